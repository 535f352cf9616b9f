// Weight-read probe for the batch-1 expert kernels (docs/perf.md, session 7): how fast an H100 reads
// the 8 experts' SwiGLU weights of one decode step (8 pairs, gate + up [1280, 896] bf16 each,
// 36.7 MB) and the down weights ([896, 1280], 18.4 MB) under different access patterns:
//   colblock  dsocr's layout: a cube per (column block, pair), `cols` 16-byte column vectors x `ks`
//             K lanes (cubes of 256 units at cols 4, ks 64, the shipped shape);
//   fullrow   whole contiguous rows per cube, K split over S cubes per pair, R rows per pass;
//   stream    a plain grid-stride read of the same bytes (the floor at this size).
// Weights are zero (timing only). Rotating expert ids keep the reads out of the 50 MB L2.
// Build and run on the GPU machine: nvcc -O3 -arch=sm_90 -std=c++17 expert_reads.cu -o expert_reads && ./expert_reads
#include <cuda_bf16.h>
#include <cstdio>
#include <vector>
#define K 1280
#define N 896
#define E 66
#define NV (N/8)
struct __align__(16) V8 { __nv_bfloat162 a,b,c,d; };
__device__ inline void fma8(float* acc, V8 w, float x){
  float2 f;
  f=__bfloat1622float2(w.a); acc[0]+=f.x*x; acc[1]+=f.y*x;
  f=__bfloat1622float2(w.b); acc[2]+=f.x*x; acc[3]+=f.y*x;
  f=__bfloat1622float2(w.c); acc[4]+=f.x*x; acc[5]+=f.y*x;
  f=__bfloat1622float2(w.d); acc[6]+=f.x*x; acc[7]+=f.y*x;
}
// (a) column blocks: block (cols, ks), grid (NV/cols, 1, 8)
__global__ void colblock(const V8* g, const V8* u, const __nv_bfloat16* x, const int* ids, float* out, int cols, int ks, int Kp, int NVp, bool dual){
  int col = blockIdx.x*cols + threadIdx.x; int pair = blockIdx.z; int e = ids[pair];
  const V8* G = g + (size_t)e*Kp*NVp; const V8* U = u + (size_t)e*Kp*NVp;
  float ag[8]={0}, au[8]={0};
  int k = threadIdx.y;
  for(; k + 3*ks < Kp; k += 4*ks){
    V8 g0=G[k*NVp+col], g1=G[(k+ks)*NVp+col], g2=G[(k+2*ks)*NVp+col], g3=G[(k+3*ks)*NVp+col];
    V8 u0,u1,u2,u3; if(dual){u0=U[k*NVp+col]; u1=U[(k+ks)*NVp+col]; u2=U[(k+2*ks)*NVp+col]; u3=U[(k+3*ks)*NVp+col];}
    float x0=__bfloat162float(x[k]),x1=__bfloat162float(x[k+ks]),x2=__bfloat162float(x[k+2*ks]),x3=__bfloat162float(x[k+3*ks]);
    fma8(ag,g0,x0);fma8(ag,g1,x1);fma8(ag,g2,x2);fma8(ag,g3,x3); if(dual){fma8(au,u0,x0);fma8(au,u1,x1);fma8(au,u2,x2);fma8(au,u3,x3);}
  }
  for(; k<Kp; k+=ks){ V8 g0=G[k*NVp+col]; float x0=__bfloat162float(x[k]); fma8(ag,g0,x0); if(dual){V8 u0=U[k*NVp+col]; fma8(au,u0,x0);}}
  __shared__ float sm[1024];
  float s=0; for(int i=0;i<8;i++) s+=ag[i]+au[i];
  sm[threadIdx.y*cols+threadIdx.x]=s; __syncthreads();
  if(threadIdx.y==0){ float t=0; for(int i=0;i<ks;i++) t+=sm[i*cols+threadIdx.x]; out[pair*NVp+col]=t; }
}
// (b) full rows, split K: block (NV, R), grid (S, 8)
template<int UNROLL>
__global__ void fullrow(const V8* g, const V8* u, const __nv_bfloat16* x, const int* ids, float* out, int S, int R){
  int col = threadIdx.x; int pair = blockIdx.y; int e = ids[pair]; int s = blockIdx.x;
  int chunk = (K + S - 1)/S; int k0 = s*chunk; int k1 = min(K, k0+chunk);
  const V8* G = g + (size_t)e*K*NV; const V8* U = u + (size_t)e*K*NV;
  float ag[8]={0}, au[8]={0};
  int k = k0 + threadIdx.y;
  for(; k + (UNROLL-1)*R < k1; k += UNROLL*R){
    V8 gw[UNROLL], uw[UNROLL]; float xv[UNROLL];
    #pragma unroll
    for(int i=0;i<UNROLL;i++){ gw[i]=G[(k+i*R)*NV+col]; uw[i]=U[(k+i*R)*NV+col]; xv[i]=__bfloat162float(x[k+i*R]); }
    #pragma unroll
    for(int i=0;i<UNROLL;i++){ fma8(ag,gw[i],xv[i]); fma8(au,uw[i],xv[i]); }
  }
  for(; k<k1; k+=R){ V8 g0=G[k*NV+col], u0=U[k*NV+col]; float x0=__bfloat162float(x[k]); fma8(ag,g0,x0); fma8(au,u0,x0);}
  __shared__ float sm[1024];
  float t=0; for(int i=0;i<8;i++) t+=ag[i]+au[i];
  sm[threadIdx.y*NV+col]=t; __syncthreads();
  if(threadIdx.y==0){ float r=0; for(int i=0;i<R;i++) r+=sm[i*NV+col]; out[(s*8+pair)*NV+col]=r; }
}
__global__ void stream(const V8* p, size_t n, float* out){
  float acc[8]={0};
  for(size_t i=blockIdx.x*(size_t)blockDim.x+threadIdx.x;i<n;i+=(size_t)gridDim.x*blockDim.x){ fma8(acc,p[i],1.f);}
  float t=0; for(int i=0;i<8;i++) t+=acc[i]; if(t==12345.f) out[0]=t;
}
int main(){
  V8 *g,*u; __nv_bfloat16* x; int* ids; float* out;
  size_t bank=(size_t)E*K*NV;
  cudaMalloc(&g,bank*16); cudaMalloc(&u,bank*16); cudaMalloc(&x,K*2); cudaMalloc(&out,64*8*NV*4*2);
  cudaMemset(g,0,bank*16); cudaMemset(u,0,bank*16); cudaMemset(x,0,K*2);
  const int REPS=8; std::vector<int> h(8*REPS); for(int r=0;r<REPS;r++) for(int p=0;p<8;p++) h[r*8+p]=(r*8+p)%E;
  cudaMalloc(&ids,h.size()*4); cudaMemcpy(ids,h.data(),h.size()*4,cudaMemcpyHostToDevice);
  cudaEvent_t a,b; cudaEventCreate(&a); cudaEventCreate(&b);
  double bytes = 8.0*2*K*N*2;
  auto run=[&](const char* name, auto launch){
    for(int w=0;w<3;w++) for(int r=0;r<REPS;r++) launch(ids+8*r);
    cudaEventRecord(a); int n=0;
    for(int it=0;it<25;it++) for(int r=0;r<REPS;r++){ launch(ids+8*r); n++; }
    cudaEventRecord(b); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms,a,b);
    double us=ms*1000/n; printf("%-28s %7.2f us  %6.2f TB/s  %s\n",name,us,bytes/us/1e6, cudaGetErrorString(cudaGetLastError()));
  };
  for(int c: {4,8,16}) for(int ks: {64,128,256}) { if(c*ks>1024) continue; char nm[64]; sprintf(nm,"swiglu colblock c%d k%d",c,ks);
    run(nm,[&](int* id){ colblock<<<dim3(NV/c,1,8),dim3(c,ks)>>>(g,u,x,id,out,c,ks,K,NV,true);}); }
  bytes = 8.0*K*N*2;
  for(int c: {4,8,16,32}) for(int ks: {32,64,128,256}) { if(c*ks>1024) continue; char nm[64]; sprintf(nm,"down colblock c%d k%d",c,ks);
    run(nm,[&](int* id){ colblock<<<dim3(160/c,1,8),dim3(c,ks)>>>(g,u,x,id,out,c,ks,896,160,false);}); }
  bytes = 8.0*2*K*N*2;
  for(int R: {2,4,8}) for(int S: {16,24,33,48}) { char nm[64]; sprintf(nm,"fullrow R%d S%d u4",R,S);
    run(nm,[&](int* id){ fullrow<4><<<dim3(S,8),dim3(NV,R)>>>(g,u,x,id,out,S,R);}); }
  for(int S: {16,33,48}) { char nm[64]; sprintf(nm,"fullrow R2 S%d u8",S);
    run(nm,[&](int* id){ fullrow<8><<<dim3(S,8),dim3(NV,2)>>>(g,u,x,id,out,S,2);}); }
  for(int blocks: {132,264,528,1056}) { char nm[64]; sprintf(nm,"stream %d blocks",blocks);
    run(nm,[&](int* id){ int r=(id-ids)/8; stream<<<blocks,256>>>(g+(size_t)(r*16%50)*K*NV,(size_t)16*K*NV,out);}); }
  return 0;
}
