"""Definitions of imported names from the workspace as cross-file context.

Real files in a temporary workspace, the real tree-sitter grammars, real tokenizers; the engine
test renders the real prompt, and the server test drives `ghostfill serve` over stdio with a
recording stand-in for a serving engine (so the prompt the server sends can be read back).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ghostfill.completion.context import WindowAnchor
from ghostfill.completion.crossfile import SnippetStore, select_snippets
from ghostfill.completion.definitions import (
    MAX_FILE_BYTES,
    DefinitionIndex,
    ImportedName,
    _import_region,
    fs_path,
    imports_of,
)
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.errors import ConfigError
from ghostfill.lsp.server import workspace_roots

SIGNATURE = "def parse_invoice_total(invoice: dict, *, strict: bool = False) -> float:"
BILLING = f'''"""Billing helpers."""

import json

TAX_RATE: float = 0.2


{SIGNATURE}
    """Sum of the invoice's line amounts.

    Lines without an amount count as zero unless `strict`.
    """
    total = 0.0
    for line in invoice["lines"]:
        if strict:
            total += line["amount"]
        else:
            total += line.get("amount", 0.0)
    return round(total, 2)


def _private_helper():
    return json.dumps({{}})


class Ledger(Base):
    """Entries of one account."""

    currency: str = "EUR"
    _cache: dict = {{}}

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.entries: list[float] = []

    def add(self, amount: float, *, note: str = "") -> None:
        self.entries.append(amount)

    def _rebalance(self) -> None:
        self.entries.sort()

    @property
    def balance(self) -> float:
        return sum(self.entries)
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """root/ with a package (re-exporting __init__, relative imports) and a src/ layout."""
    root = tmp_path / "ws"
    write(root / "shop" / "__init__.py", "from .billing import parse_invoice_total\n")
    write(root / "shop" / "billing.py", BILLING)
    write(root / "shop" / "views.py", "from .billing import Ledger as Book\n")
    write(root / "src" / "tools" / "__init__.py", "")
    write(root / "src" / "tools" / "text.py", "def slugify(title: str) -> str:\n"
          "    return title.lower().replace(' ', '-')\n")
    return root


def by_name(index: DefinitionIndex, text: str, path: Path | str, grammar: str = "python"
            ) -> dict[str, str]:
    return {d.name: d.text for d in index.lookup(text, grammar, str(path))}


# ------------------------------------------------------------------------------ imports


def test_python_import_forms_are_read():
    text = ("import a.b\nimport a.b as m, c\nfrom a.b import X, Y as Z\nfrom .m import (P,\n"
            "    Q)\nfrom . import sib\nfrom ..up import *\ntry:\n    import fast\n"
            "except ImportError:\n    fast = None\n")
    assert imports_of(text, "python") == [
        ImportedName("a.b", "a.b", None),
        ImportedName("m", "a.b", None),
        ImportedName("c", "c", None),
        ImportedName("X", "a.b", "X"),
        ImportedName("Z", "a.b", "Y"),
        ImportedName("P", "m", "P", 1),
        ImportedName("Q", "m", "Q", 1),
        ImportedName("sib", "", "sib", 1),
        ImportedName("fast", "fast", None),
    ]


def test_javascript_import_forms_are_read():
    text = ("import Shape, {add, mul as times} from './geometry';\n"
            "import * as util from '../util.js';\nimport React from 'react';\n")
    assert imports_of(text, "typescript") == [
        ImportedName("Shape", "./geometry", "default"),
        ImportedName("add", "./geometry", "add"),
        ImportedName("times", "./geometry", "mul"),
        ImportedName("util", "../util.js", None),
        ImportedName("React", "react", "default"),
    ]


def test_only_the_import_region_of_the_buffer_is_parsed(workspace: Path):
    body = "def work(x):\n    return x\n\n" * 2000
    text = ("import os\ntry:\n    from shop.billing import Ledger\nexcept ImportError:\n"
            "    Ledger = None\nfrom shop.billing import (\n    TAX_RATE,\n"
            "    parse_invoice_total,\n)\n\n" + body + "book = Ledger(TAX_RATE)\n")
    region = _import_region(text, "python")
    assert region.endswith(")\n\n") and "def work" not in region
    index = DefinitionIndex([workspace])
    found = {d.name: d.uses for d in index.lookup(text, "python", str(workspace / "m.py"))}
    assert found == {"Ledger": 2, "TAX_RATE": 1, "parse_invoice_total": 0}  # `Ledger = None`
    js = "import {\n  add,\n} from './m';\nimport x from './x';\nconst y = add(1);\n"
    assert _import_region(js, "typescript") == js[: js.index("const")]
    assert _import_region("const y = 1;\n", "typescript") == ""


# ------------------------------------------------------------------------- resolution


def test_absolute_aliased_relative_reexported_and_src_imports(workspace: Path):
    index = DefinitionIndex([workspace])
    text = ("from shop.billing import parse_invoice_total as total_of, TAX_RATE\n"
            "import shop.billing as billing\nfrom shop import parse_invoice_total\n"
            "from tools.text import slugify\nfrom .views import Book\n\n"
            "x = total_of(inv) * TAX_RATE\nb = billing.Ledger('me')\nBook('x')\n")
    found = {d.name: d for d in index.lookup(text, "python", str(workspace / "shop" / "app.py"))}
    # One definition per place: the alias the buffer uses most names it.
    assert found["total_of"].text.startswith(SIGNATURE)
    assert found["total_of"].label == "shop/billing.py"
    assert "parse_invoice_total" not in found  # same definition, re-exported by shop/__init__
    assert found["TAX_RATE"].text == "TAX_RATE: float = 0.2"
    assert found["billing.Ledger"].text.startswith("class Ledger(Base):")  # module attribute
    assert found["slugify"].label == "src/tools/text.py"  # src/ layout
    # `.views` re-exports Ledger as Book: followed to its definition (already found once).
    assert set(found) == {"total_of", "TAX_RATE", "billing.Ledger", "slugify"}
    assert found["total_of"].uses == 1 and found["slugify"].uses == 0


def test_reexport_through_package_init(workspace: Path):
    index = DefinitionIndex([workspace])
    found = by_name(index, "from shop import parse_invoice_total\n", workspace / "main.py")
    assert found["parse_invoice_total"].startswith(SIGNATURE)


def test_function_shows_signature_and_docstring_not_body(workspace: Path):
    index = DefinitionIndex([workspace])
    text = by_name(index, "from shop.billing import parse_invoice_total\n",
                   workspace / "main.py")["parse_invoice_total"]
    assert text == (SIGNATURE + '\n    """Sum of the invoice\'s line amounts.\n\n'
                    "    Lines without an amount count as zero unless `strict`.\n"
                    '    """\n    ...')


def test_class_outline_has_public_signatures_within_the_line_cap(workspace: Path):
    index = DefinitionIndex([workspace])
    text = by_name(index, "from shop.billing import Ledger\n", workspace / "main.py")["Ledger"]
    assert text == ('class Ledger(Base):\n    """Entries of one account."""\n'
                    '    currency: str = "EUR"\n'
                    "    def __init__(self, owner: str) -> None: ...\n"
                    '    def add(self, amount: float, *, note: str = "") -> None: ...\n'
                    "    @property\n    def balance(self) -> float: ...")
    methods = "".join(f"    def method_{i}(self, value: int) -> int:\n        return value\n\n"
                      for i in range(40))
    write(workspace / "big.py", f"class Big:\n{methods}")
    outline = by_name(DefinitionIndex([workspace], max_lines=10), "from big import Big\n",
                      workspace / "main.py")["Big"].split("\n")
    assert len(outline) <= 10
    assert outline[0] == "class Big:" and outline[-1] == "    # ..."
    assert outline[1] == "    def method_0(self, value: int) -> int: ..."


def test_each_definition_has_its_signature_alone(workspace: Path):
    index = DefinitionIndex([workspace])
    found = {d.name: d.brief for d in index.lookup(
        "from shop.billing import parse_invoice_total, Ledger, TAX_RATE\n", "python",
        str(workspace / "main.py"))}
    assert found == {"parse_invoice_total": SIGNATURE + " ...",
                     "Ledger": "class Ledger(Base): ...",
                     "TAX_RATE": "TAX_RATE: float = 0.2"}


def test_missing_modules_and_names_are_skipped(workspace: Path):
    index = DefinitionIndex([workspace])
    text = ("import os\nimport numpy as np\nfrom shop.billing import nothing_here\n"
            "from shop.missing import thing\nfrom .. import far\nnp.zeros(3)\n")
    assert index.lookup(text, "python", str(workspace / "main.py")) == []


def test_paths_outside_the_root_are_never_read(workspace: Path, tmp_path: Path):
    write(tmp_path / "secret.py", "def leaked_secret():\n    return 'x'\n")
    write(tmp_path / "secretpkg" / "__init__.py", "def leaked_too():\n    pass\n")
    index = DefinitionIndex([workspace])
    # `..` climbs out of the root; the file exists but is not the workspace's.
    assert index.lookup("from ..secret import leaked_secret\n", "python",
                        str(workspace / "main.py")) == []
    assert index.lookup("from ...secret import leaked_secret\n", "python",
                        str(workspace / "shop" / "app.py")) == []
    # A link inside the root pointing out of it is not followed either.
    os.symlink(tmp_path / "secretpkg", workspace / "linked", target_is_directory=True)
    assert index.lookup("from linked import leaked_too\n", "python",
                        str(workspace / "main.py")) == []
    write(workspace / "web" / "main.ts", "")
    assert index.lookup("import {leaked} from '../../secret';\n", "typescript",
                        str(workspace / "web" / "main.ts")) == []
    assert index.parsed == 0


def test_a_file_over_the_size_cap_is_skipped_unread(workspace: Path):
    filler = "# " + "x" * 98 + "\n"
    write(workspace / "huge.py", filler * (MAX_FILE_BYTES // len(filler) + 1)
          + "def in_huge(a):\n    return a\n")
    index = DefinitionIndex([workspace])
    assert index.lookup("from huge import in_huge\n", "python", str(workspace / "m.py")) == []
    assert index.parsed == 0
    roomy = DefinitionIndex([workspace], max_file_bytes=2 * MAX_FILE_BYTES)
    assert by_name(roomy, "from huge import in_huge\n", workspace / "m.py")


def test_a_file_that_parses_too_slowly_is_skipped_once(workspace: Path):
    # Comment lines after an indented block: tree-sitter-python needs ~8 s for these 400 kB
    # (measured on the 2-core test machine); the parse is cut at PARSE_BUDGET_S.
    write(workspace / "slow.py", "def first(a):\n    return a\n" + ("# " + "x" * 98 + "\n")
          * 4000 + "def in_slow(a):\n    return a\n")
    index = DefinitionIndex([workspace])
    started = time.monotonic()
    assert index.lookup("from slow import in_slow\n", "python", str(workspace / "m.py")) == []
    assert time.monotonic() - started < 2.0
    assert index.parsed == 1
    assert index.lookup("from slow import in_slow\n", "python", str(workspace / "m.py")) == []
    assert index.parsed == 1  # the failure is cached with the file's stamp


def test_summaries_are_cached_until_the_file_changes(workspace: Path):
    index = DefinitionIndex([workspace])
    text = "from shop.billing import parse_invoice_total\n"
    first = index.lookup(text, "python", str(workspace / "main.py"))
    parsed = index.parsed
    assert parsed == 1
    assert index.lookup(text, "python", str(workspace / "main.py")) == first
    assert index.parsed == parsed  # a stat, no read, no parse
    billing = workspace / "shop" / "billing.py"
    billing.write_text(BILLING.replace("strict: bool = False", "strict: bool = True"))
    stamp = billing.stat().st_mtime_ns + 1_000_000_000
    os.utime(billing, ns=(stamp, stamp))
    again = index.lookup(text, "python", str(workspace / "main.py"))
    assert index.parsed == parsed + 1
    assert "strict: bool = True" in again[0].text


def test_no_root_no_definitions(workspace: Path):
    index = DefinitionIndex()
    assert not index.applies("python", "from shop.billing import Ledger\n")
    assert index.lookup("from shop.billing import Ledger\n", "python",
                        str(workspace / "main.py")) == []
    assert not DefinitionIndex([workspace]).applies("rust", "use crate::x;")


def test_javascript_and_typescript_relative_imports(tmp_path: Path):
    write(tmp_path / "web" / "geometry.ts", """/** Adds two vectors. */
export function add(a: Vec, b: Vec): Vec {
  return { x: a.x + b.x, y: a.y + b.y };
}
export const scale = (v: Vec, k: number): Vec => ({ x: v.x * k, y: v.y * k });
export default class Shape {
  name: string;
  private secret = 1;
  constructor(name: string) {
    this.name = name;
  }
  area(): number {
    return 0;
  }
  describe(prefix: string): string {
    return prefix + this.name;
  }
}
export { add as plus };
""")
    write(tmp_path / "web" / "util" / "index.js", "export function clamp(x, lo, hi) {\n"
          "  return Math.min(hi, Math.max(lo, x));\n}\n")
    index = DefinitionIndex([tmp_path])
    text = ("import Shape, {plus, scale} from './geometry.js';\nimport * as util from './util';\n"
            "import React from 'react';\nconst s = new Shape('a'); util.clamp(1, 0, 2);\n")
    uri = (tmp_path / "web" / "main.ts").as_uri()
    found = {d.name: d for d in index.lookup(text, "typescript", uri)}
    assert set(found) == {"Shape", "plus", "scale", "util.clamp"}
    assert found["plus"].text.startswith("/** Adds two vectors. */\nexport function add(")
    assert found["Shape"].text == ("export default class Shape {\n  name: string;\n"
                                   "  constructor(name: string) { ... }\n"
                                   "  area(): number { ... }\n"
                                   "  describe(prefix: string): string { ... }\n}")
    assert found["util.clamp"].label == "web/util/index.js"
    assert found["Shape"].uses == 1
    # The signatures alone: what the prompt shows when the whole texts do not fit.
    assert found["plus"].brief == "export function add(a: Vec, b: Vec): Vec { ... }"
    assert found["scale"].brief == "export const scale = (v: Vec, k: number): Vec => ..."
    assert found["Shape"].brief == "export default class Shape { ... }"
    assert found["util.clamp"].brief == "export function clamp(x, lo, hi) { ... }"


def test_document_uris_and_workspace_roots():
    assert fs_path("file:///tmp/a%20b/m.py") == Path("/tmp/a b/m.py")
    assert fs_path("untitled:Untitled-1") is None
    assert fs_path("/tmp/m.py") == Path("/tmp/m.py")
    assert workspace_roots("file:///r", []) == ["/r"]
    # Folders win over rootUri; remote schemes have nothing to read here.
    assert workspace_roots("file:///r", ["file:///a", "vscode-remote://h/b"]) == ["/a"]
    assert workspace_roots(None, []) == []


def test_the_switch_is_validated_like_the_other_settings():
    assert Config().context.import_definitions is True
    assert not Config().updated({"context": {"importDefinitions": False}}
                                ).context.import_definitions
    with pytest.raises(ConfigError, match=r"context\.import_definitions"):
        Config().updated({"context": {"importDefinitions": "no"}})


# -------------------------------------------------------------------------- selection


def test_names_near_the_cursor_rank_first_and_the_cap_holds(workspace: Path,
                                                           starcoder_tokenizer):
    write(workspace / "shop" / "tax.py", "def vat_of(amount: float) -> float:\n"
          "    return amount * 0.2\n")
    index = DefinitionIndex([workspace])
    text = ("from shop.billing import Ledger, TAX_RATE\nfrom shop.tax import vat_of\n\n"
            "book = Ledger('me')\nrate = TAX_RATE\n" + "pass\n" * 30 + "x = vat_of(")
    defs = [d.snippet() for d in index.lookup(text, "python", str(workspace / "main.py"))]
    cursor = "\n".join(text.split("\n")[-12:])
    store = SnippetStore()
    store.add_around("file:///other.py", "def unrelated():\n    return vat_total\n", 0)
    chosen = select_snippets(store.chunks(), defs, "file:///main.py", text, cursor,
                             starcoder_tokenizer, 1024)
    assert chosen[0].path == "shop/tax.py"  # vat_of is at the cursor
    # The two billing definitions are merged into one snippet of their file, in file order.
    billing = next(s for s in chosen if s.path == "shop/billing.py")
    assert billing.text.index("TAX_RATE") < billing.text.index("class Ledger")
    assert len([s for s in chosen if s.path == "shop/billing.py"]) == 1
    # Within a small cap the nearest one still fits, the rest does not.
    small = select_snippets([], defs, "file:///main.py", text, cursor, starcoder_tokenizer, 40)
    assert [s.path for s in small] == ["shop/tax.py"]
    total = sum(len(starcoder_tokenizer.encode(s.text)) + 16 for s in small)
    assert total <= 40


def test_a_definition_already_in_the_window_is_left_out(workspace: Path, starcoder_tokenizer):
    index = DefinitionIndex([workspace])
    text = "from shop.billing import parse_invoice_total\nparse_invoice_total("
    defs = [d.snippet() for d in index.lookup(text, "python", str(workspace / "main.py"))]
    window = "# pasted\n" + SIGNATURE + "\n    ...\n" + text
    assert select_snippets([], defs, "main.py", window, text, starcoder_tokenizer, 512) == []
    assert len(select_snippets([], defs, "main.py", text, text, starcoder_tokenizer, 512)) == 1


# ----------------------------------------------------------------------- end to end


def test_engine_prompt_shows_imported_signature_only_when_enabled(workspace: Path,
                                                                  gemma_backend):
    config = Config().updated({"completion": {"maxTokens": 16}, "model": {"contextLength": 512}})
    engine = CompletionEngine(config, gemma_backend)
    index = DefinitionIndex([workspace])
    main = workspace / "app" / "main.py"
    text = ("from shop.billing import parse_invoice_total\n\n\n"
            "def checkout(invoice):\n    total = parse_invoice_total(")
    # No other buffer is open (no SnippetStore at all): the definition still comes.
    anchor = WindowAnchor()
    prepared = engine.prepare(CompletionInput.of_text(text, len(text), path=str(main),
                                                      anchor=anchor),
                              ContextSources(definitions=index))
    shown = prepared.prompt.display()
    assert "# shop/billing.py\n" + SIGNATURE in shown
    assert "total += line" not in shown  # the body stays out
    assert prepared.prompt.counts()["total"] + 16 <= 512
    # Sticky per window start: typing keeps the head of the prompt (and the KV cache).
    head_len = len(prepared.prompt.tokens) - len(prepared.window.prefix_ids)
    again = engine.prepare(CompletionInput.of_text(text + "i", len(text) + 1, path=str(main),
                                                   anchor=anchor),
                           ContextSources(definitions=index))
    assert again.prompt.tokens[:head_len] == prepared.prompt.tokens[:head_len]

    for off in ({"importDefinitions": False}, {"crossFile": False}):
        quiet = engine.with_config(config.updated({"context": off}))
        shown = quiet.prepare(CompletionInput.of_text(text, len(text), path=str(main)),
                              ContextSources(definitions=index)).prompt.display()
        assert SIGNATURE not in shown and "shop/billing.py" not in shown


# ------------------------------------------------------------------------ the server


class _Recorder(BaseHTTPRequestHandler):
    """OpenAI-style `/v1/completions` that keeps every prompt it is sent."""

    prompts: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_error(404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        type(self).prompts.append(str(body.get("prompt", "")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"choices": [{"text": "invoice)", "index": 0, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    prompts: ClassVar[list[str]] = []
    handler = type("Recorder", (_Recorder,), {"prompts": prompts})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", prompts
    httpd.shutdown()
    httpd.server_close()


async def test_server_reads_definitions_under_the_client_root(workspace: Path,
                                                               recorder: tuple[str, list[str]]):
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    url, prompts = recorder
    client = LanguageClient("ghostfill-test", "1")
    await client.start_io(sys.executable, "-m", "ghostfill", "serve")
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=workspace.as_uri(),
            initialization_options={
                "model": {"backend": "openai", "template": "starcoder"},
                "remote": {"endpoint": url},
                "server": {"debounceMs": 0, "prefetch": False, "warmOnOpen": False},
            }))
        client.initialized(types.InitializedParams())
        uri = (workspace / "app" / "main.py").as_uri()
        text = ("from shop.billing import parse_invoice_total\n\n\n"
                "def checkout(invoice):\n    total = parse_invoice_total(")
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=4, character=len("    total = parse_invoice_total(")),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        assert result is not None and result.items
        assert len(prompts) == 1
        assert "<file_sep>shop/billing.py\n" + SIGNATURE in prompts[0]
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()


def index_lookup(workspace: Path, text: str) -> list:
    return DefinitionIndex([workspace]).lookup(text, "python", str(workspace / "main.py"))


def test_signatures_first_then_whole_texts_within_the_cap(workspace: Path, starcoder_tokenizer):
    """A file that imports many names gets every signature before any docstring: the name the
    next line needs is there even when the whole texts would not all fit (#18)."""
    helpers = "".join(
        f'def helper_{i}(value: int, *, scale: float = 1.0) -> float:\n'
        f'    """Helper number {i}.\n\n    It scales the value and adds {i}; a long docstring\n'
        f'    that takes room in the prompt.\n    """\n    return value * scale + {i}\n\n\n'
        for i in range(8))
    write(workspace / "shop" / "helpers.py", helpers)
    names = ", ".join(f"helper_{i}" for i in range(8))
    uses = "".join(f"a{i} = helper_{i}(1)\n" for i in range(7))  # helper_7: imported, unused
    text = f"from shop.helpers import {names}\n\n{uses}" + "pass\n" * 20 + "x = "
    defs = [d.snippet() for d in index_lookup(workspace, text)]
    cursor = "\n".join(text.split("\n")[-12:])
    cap = 256  # the default `context.crossFileTokens`
    chosen = select_snippets([], defs, "main.py", text, cursor, starcoder_tokenizer, cap)
    assert len(chosen) == 1  # one file, one path line
    shown = chosen[0].text
    # Whole, the eight definitions would not fit; their signatures do.
    whole = sum(len(starcoder_tokenizer.encode(d.text)) for d in defs)
    assert whole > 1.5 * cap
    for i in range(8):
        assert f"def helper_{i}(value: int, *, scale: float = 1.0) -> float:" in shown
    assert len(starcoder_tokenizer.encode(shown)) + 16 <= cap
    # The room left goes to whole texts, the best-ranked first: the import nothing uses yet.
    assert "Helper number 7." in shown


def test_an_import_not_used_yet_ranks_before_the_used_ones(workspace: Path,
                                                           starcoder_tokenizer):
    write(workspace / "shop" / "tax.py", "def vat_of(amount: float) -> float:\n"
          "    return amount * 0.2\n\n\ndef net_of(amount: float) -> float:\n"
          "    return amount / 1.2\n")
    text = "from shop.tax import vat_of, net_of\n\nv = vat_of(3)\n" + "pass\n" * 20 + "n = "
    defs = [d.snippet() for d in index_lookup(workspace, text)]
    cursor = "\n".join(text.split("\n")[-12:])
    # Room for one signature only: the unused one wins it.
    brief = next(d.brief for d in defs if d.name == "net_of")
    cap = len(starcoder_tokenizer.encode(brief)) + 16
    chosen = select_snippets([], defs, "main.py", text, cursor, starcoder_tokenizer, cap)
    assert [c.text for c in chosen] == [brief]
