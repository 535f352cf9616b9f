//! `--shard INDEX/COUNT`: one task's share of a document set, so that COUNT tasks (a Kubernetes
//! indexed Job, a SLURM array) split the inputs without talking to each other. The inputs are
//! sorted by path and task INDEX (0-based, as `JOB_COMPLETION_INDEX` and `--array=0-N`) takes
//! every COUNT-th from position INDEX: every input lands in exactly one shard, the same one on
//! every run, whatever order the arguments or the directory listing came in.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("--shard {s:?}: give INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4 for the first of four tasks");
        let (index, count) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's inputs, sorted by path (duplicates named once).
    pub fn select(&self, inputs: &[String]) -> Vec<String> {
        let mut sorted = inputs.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted.into_iter().skip(self.index).step_by(self.count).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1/0", "1", "-1/3", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("INDEX/COUNT"), "{bad}");
        }
    }

    #[test]
    fn shards_split_the_inputs_exactly_once_whatever_their_order() {
        let inputs: Vec<String> = (0..23).map(|i| format!("docs/{:03}.pdf", (i * 7) % 23)).collect();
        let mut reversed = inputs.clone();
        reversed.reverse();
        let mut all = Vec::new();
        for index in 0..4 {
            let shard = Shard { index, count: 4 };
            let mine = shard.select(&inputs);
            assert_eq!(mine, shard.select(&reversed), "the same shard whatever the order");
            assert!(mine.len() == 5 || mine.len() == 6, "{mine:?}");
            all.extend(mine);
        }
        all.sort();
        let mut expected = inputs.clone();
        expected.sort();
        assert_eq!(all, expected, "every input in exactly one shard");
        assert_eq!(Shard { index: 3, count: 4 }.select(&["b".into(), "a".into()]), Vec::<String>::new());
    }
}
