"""Write train.jsonl: one-sentence summaries of public functions and classes of Python's standard library.

The text is CPython's own docstrings (PSF licence): the first paragraph of each docstring, kept when it is
one sentence-ending line of 20-300 characters and not a duplicate. Run with the interpreter whose
standard library you want (the committed file came from CPython 3.11.7).
"""

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

MODULES = """json os os.path re string textwrap itertools functools collections math statistics random datetime
calendar shutil pathlib glob fnmatch tempfile csv zipfile tarfile gzip hashlib hmac base64 binascii struct codecs
unicodedata difflib heapq bisect array copy pprint enum decimal fractions operator contextlib abc typing dataclasses
inspect logging argparse getpass platform time threading queue subprocess socket ssl select signal urllib.parse
urllib.request http.client email.utils mimetypes html xml.etree.ElementTree sqlite3 pickle shelve configparser
tomllib io warnings traceback gc weakref types uuid secrets ipaddress locale gettext zlib bz2 lzma filecmp stat
sysconfig importlib pkgutil ast dis tokenize keyword token timeit cProfile pstats doctest unittest venv zipimport
asyncio concurrent.futures multiprocessing sched selectors mmap ctypes curses readline shlex cmd colorsys wave netrc
plistlib quopri graphlib reprlib numbers cmath builtins sys errno faulthandler atexit""".split()
SIGNATURE_LINE = re.compile(r"^\w+\(.*\)( -> .*)?$")  # a builtin's docstring starts with its signature


def summary(doc: str) -> str:
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")] + [""]
    return paragraphs[1] if SIGNATURE_LINE.match(paragraphs[0]) else paragraphs[0]


def rows() -> list[dict[str, str]]:
    found, seen = [], set()
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            text = summary(inspect.getdoc(obj) or "")
            if 20 <= len(text) <= 300 and text.endswith(".") and text not in seen:
                seen.add(text)
                found.append({"name": f"{name}.{attr}", "kind": "class" if inspect.isclass(obj) else "function",
                              "summary": text})
    return found


if __name__ == "__main__":
    out = Path(__file__).with_name("train.jsonl")
    found = rows()
    out.write_text("".join(json.dumps(row) + "\n" for row in found))
    print(f"{len(found)} rows from Python {sys.version.split()[0]} -> {out}")
