"""Build a 'stdlib API summaries' domain from CPython 3.11's own docstrings (PSF licence)."""
import importlib, inspect, json, pkgutil, re, sys
MODULES = ["json", "os", "os.path", "re", "string", "textwrap", "itertools", "functools", "collections", "math",
           "statistics", "random", "datetime", "calendar", "shutil", "pathlib", "glob", "fnmatch", "tempfile",
           "csv", "zipfile", "tarfile", "gzip", "hashlib", "hmac", "base64", "binascii", "struct", "codecs",
           "unicodedata", "difflib", "heapq", "bisect", "array", "copy", "pprint", "enum", "decimal", "fractions",
           "operator", "contextlib", "abc", "typing", "dataclasses", "inspect", "logging", "argparse", "getpass",
           "platform", "time", "threading", "queue", "subprocess", "socket", "ssl", "select", "signal", "urllib.parse",
           "urllib.request", "http.client", "email.utils", "mimetypes", "html", "xml.etree.ElementTree", "sqlite3",
           "pickle", "shelve", "configparser", "tomllib", "io", "warnings", "traceback", "gc", "weakref", "types",
           "uuid", "secrets", "ipaddress", "locale", "gettext", "zlib", "bz2", "lzma", "filecmp", "stat", "sysconfig",
           "importlib", "pkgutil", "ast", "dis", "tokenize", "keyword", "token", "timeit", "cProfile", "pstats",
           "doctest", "unittest", "venv", "zipimport", "asyncio", "concurrent.futures", "multiprocessing", "sched",
           "selectors", "mmap", "ctypes", "curses", "readline", "shlex", "cmd", "colorsys", "wave", "netrc", "plistlib",
           "quopri", "graphlib", "reprlib", "numbers", "cmath", "builtins", "sys", "errno", "faulthandler", "atexit"]
rows, seen = [], set()
for name in MODULES:
    try:
        module = importlib.import_module(name)
    except Exception:
        continue
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        paragraph = " ".join(doc.split("\n\n")[0].split())
        if re.match(r"^\w+\(.*\)( -> .*)?$", paragraph):  # a builtin's signature line: take the next paragraph
            paragraph = " ".join((doc.split("\n\n") + [""])[1].split())
        if not (20 <= len(paragraph) <= 300) or not paragraph.endswith(".") or paragraph in seen:
            continue
        seen.add(paragraph)
        kind = "class" if inspect.isclass(obj) else "function"
        rows.append({"name": f"{name}.{attr}", "kind": kind, "summary": paragraph})
with open("train.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
print(len(rows), sys.version)
