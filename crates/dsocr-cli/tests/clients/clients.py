"""Real clients against a running `dsocr serve`: the `openai` Python package (a plain and a
streaming chat completion, sent unchanged) and, where Chromium is installed, the upload page in a
headless browser (upload, wait for the text, check the output and the box drawing, screenshot).

usage: clients.py BASE_URL IMAGE EXPECTED_TEXT_FILE SCREENSHOT_PATH
Exit 0 on success; 3 when Chromium or chromedriver is missing (the browser part is skipped).
"""

import base64
import json
import os
import shutil
import sys
import time
import urllib.request

base, image, expected_file, screenshot = sys.argv[1:5]
expected = open(expected_file, encoding="utf-8").read()


def wait_ready(timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


wait_ready()

# --- the openai client, unchanged ---------------------------------------------------------
from openai import OpenAI  # noqa: E402

client = OpenAI(base_url=base + "/v1", api_key="sesame")
uri = "data:image/png;base64," + base64.b64encode(open(image, "rb").read()).decode()
messages = [{"role": "user", "content": [
    {"type": "text", "text": "Describe this image in detail."},
    {"type": "image_url", "image_url": {"url": uri}},
]}]
models = client.models.list()
model = models.data[0].id
plain = client.chat.completions.create(model=model, messages=messages, temperature=0, extra_body={"dsocr": {"mode": "tiny"}})
got = plain.choices[0].message.content
assert got == expected, f"plain: {got!r} != {expected!r}"
assert plain.usage.completion_tokens > 0 and plain.usage.prompt_tokens == 81, plain.usage
print("openai plain: ok,", plain.usage.completion_tokens, "tokens")

stream = client.chat.completions.create(model=model, messages=messages, stream=True, extra_body={"dsocr": {"mode": "tiny"}})
pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
assert "".join(pieces) == expected, f"stream: {''.join(pieces)!r} != {expected!r}"
print("openai stream: ok,", len(pieces), "chunks")

try:
    client.chat.completions.create(model="not-this-one", messages=messages)
    raise SystemExit("an unknown model was accepted")
except Exception as e:  # openai.NotFoundError
    assert "does not exist" in str(e), e
print("openai error: ok")

# --- the upload page in headless Chromium -------------------------------------------------
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
driver_path = shutil.which("chromedriver")
if not chromium or not driver_path:
    print("SKIPPED browser: chromium or chromedriver is not installed (Debian: apt-get install chromium chromium-driver)")
    sys.exit(3)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

options = webdriver.ChromeOptions()
options.binary_location = chromium
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service(driver_path), options=options)
try:
    driver.get(base + "/")
    assert driver.title == "dsocr"
    driver.find_element(By.ID, "key").send_keys("sesame")
    driver.find_element(By.ID, "file").send_keys(os.path.abspath(image))
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "run").is_enabled())
    Select(driver.find_element(By.ID, "task")).select_by_value("describe")
    Select(driver.find_element(By.ID, "mode")).select_by_visible_text("tiny")
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, 300).until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "error")))
    status = driver.find_element(By.ID, "status").text
    assert status.startswith("done"), status
    raw = driver.execute_script("return document.getElementById('raw').textContent")
    assert raw == expected, f"page: {raw!r} != {expected!r}"
    rendered = driver.execute_script("return document.getElementById('rendered').innerHTML")
    assert rendered.strip(), "the rendered markdown is empty"
    # Random weights write no layout tags: check the box drawing on a known answer instead.
    drawn = driver.execute_script(
        "const p = parse('<|ref|>title<|/ref|><|det|>[[100, 100, 900, 300]]<|/det|>\\n# Heading');"
        "drawBoxes(p.regions); const c = document.getElementById('boxes');"
        "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let inked = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;"
        "return [p.regions.length, c.width, c.height, inked, render(p.text)];"
    )
    assert drawn[0] == 1 and drawn[1] > 0 and drawn[2] > 0, drawn
    assert drawn[3] > 0, f"no box drawn on the canvas: {drawn}"
    assert "<h1>Heading</h1>" in drawn[4], drawn
    driver.save_screenshot(screenshot)
    print("browser: ok, screenshot", screenshot, json.dumps(drawn[:4]))
finally:
    driver.quit()
