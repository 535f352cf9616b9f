"""Read dsocr's hOCR and ALTO with the tools archive pipelines use (OCRmyPDF's hOCR parser and
renderer, pdfminer, lxml) and print what they found as JSON, for tests/formats.rs to compare.

usage: check_formats.py HOCR ALTO OUT_PDF
"""

import json
import os
import subprocess
import sys

from lxml import etree
from ocrmypdf.hocrtransform import HocrParser
from pdfminer.high_level import extract_text

hocr_path, alto_path, pdf_path = sys.argv[1:4]

# hOCR: OCRmyPDF's parser (first page), its words and boxes.
page = HocrParser(hocr_path).parse()
words = []


def walk(element):
    if element.text:
        words.append({"text": element.text, "bbox": [element.bbox.left, element.bbox.top, element.bbox.right, element.bbox.bottom]})
    for child in element.children:
        walk(child)


walk(page)

# OCRmyPDF's renderer makes a text-only PDF from it; pdfminer reads the text back.
subprocess.run([sys.executable, "-m", "ocrmypdf.hocrtransform", "-r", "72", hocr_path, pdf_path], check=True)
pdf_text = extract_text(pdf_path)

# ALTO: well-formed, in the v4 namespace; strings per block.
ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
alto = etree.parse(alto_path)
blocks = []
for block in alto.iterfind(".//a:TextBlock", ns):
    blocks.append(
        {
            "tag": block.get("TAGREFS"),
            "strings": [s.get("CONTENT") for s in block.iterfind(".//a:String", ns)],
        }
    )
tags = {t.get("ID"): t.get("LABEL") for t in alto.iterfind(".//a:LayoutTag", ns)}

# The ALTO v4 schema, where one is at hand (DSOCR_ALTO_XSD: a local alto-4-x.xsd whose xlink
# import resolves offline); lxml raises with the first violation.
xsd = os.environ.get("DSOCR_ALTO_XSD")
if xsd:
    etree.XMLSchema(etree.parse(xsd)).assertValid(alto)

print(
    json.dumps(
        {
            "page_bbox": [page.bbox.left, page.bbox.top, page.bbox.right, page.bbox.bottom],
            "words": words,
            "pdf_text": pdf_text,
            "alto_blocks": blocks,
            "alto_tags": tags,
            "alto_pages": len(alto.findall(".//a:Page", ns)),
            "illustrations": len(alto.findall(".//a:Illustration", ns)),
            "alto_xsd": xsd or "",
        }
    )
)
