"""The Python code of a model's markdown answer.

`extract_python_code` takes fenced blocks (```` ``` ```` or ``~~~``) tagged as Python or
untagged, joined in order; blocks in other languages, shell sessions and program output are
skipped. Interactive sessions (``>>>`` prompts) count only when they define something, with the
prompts and printed results removed. An answer without fences gives its longest run of lines
that parses as Python.

Bounded for any text (model answers are untrusted): answers longer than `MAX_ANSWER_CHARS` are
cut there, no regex backtracks over a long line, nesting too deep for the parser counts as "does
not parse", and the search for code in an unfenced answer tries at most `MAX_PARSE_TRIES`
candidate runs of at most `MAX_RUN_LINES` lines. It never raises on a str.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Longest answer looked at (characters); the rest is cut (code cut short then fails to run).
MAX_ANSWER_CHARS = 1_000_000
# Unfenced answers: the longest run of lines tried as one piece of code, and how many tries.
MAX_RUN_LINES = 400
MAX_PARSE_TRIES = 2_000
# Only the start of a line decides whether it starts code (regexes never see long lines).
_LINE_START_CHARS = 200
# What the parser may raise on hostile text: nesting too deep, NUL bytes, exhausted memory.
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3", "sage"})
CONSOLE_TAGS = frozenset({"pycon", "python-repl", "pyrepl", "doctest"})

# Possessive quantifiers: a line of 10^6 tildes and a backtick fails in linear time.
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*+)(?P<fence>`{3,}+|~{3,}+)(?P<info>[^`\n]*+)$")
_PROMPT = re.compile(r"^(>>>|\.\.\.)( |$)")
# A top-level line that starts a Python statement (prose rarely matches these).
_CODE_START = re.compile(
    r"^(def |async def |class |import |from \S+ import |@\w|if |elif |else:|for |while |with |"
    r"try:|except|finally:|return\b|raise\b|assert |print\(|lambda |global |nonlocal |pass$|"
    r"#|[A-Za-z_][\w.]*(\[[^\]]*\])?\s*(=[^=]|\+=|-=|\*=|/=|\(|,\s*[A-Za-z_]\w*\s*=)|"
    r"[A-Za-z_][\w.]*+\s*+:\s*+[\w\[\]., |]++\s*+=)"
)


@dataclass(frozen=True)
class _Block:
    tag: str  # first word of the info string, lower-case ("" when untagged)
    text: str


def extract_python_code(answer: str) -> str:
    """Python code of a markdown model answer ("" when there is none); any str is fine."""
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    answer = answer[:MAX_ANSWER_CHARS]
    try:
        return _extract(answer)
    except (RecursionError, MemoryError):  # a last guard: hostile text gives no code
        return ""


def _extract(answer: str) -> str:
    blocks = _fenced_blocks(answer)
    if blocks:
        chosen = [code for code in (_python_of(block) for block in blocks) if code]
        return _tidy("\n\n".join(chosen))
    return _tidy(_longest_parsing_run(answer.splitlines()))


def _fenced_blocks(answer: str) -> list[_Block]:
    """Fenced blocks in order; an unterminated last fence runs to the end of the answer."""
    lines = answer.splitlines()
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"].expandtabs())
        tag = _tag_of(opening["info"])
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            # A closing fence: the same character, at least as long, nothing after it.
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                break
            body.append(_remove_indent(lines[i], indent))
            i += 1
        blocks.append(_Block(tag, "\n".join(body)))
        i += 1
    return blocks


def _tag_of(info: str) -> str:
    words = info.strip().strip("{}").replace(",", " ").split()
    return words[0].lstrip(".").lower() if words else ""


def _remove_indent(line: str, indent: int) -> str:
    """Drop up to `indent` leading spaces (a fence indented in a list item indents its body)."""
    expanded = line.expandtabs() if line.startswith("\t") else line
    spaces = len(expanded) - len(expanded.lstrip(" "))
    return expanded[min(spaces, indent):]


def _python_of(block: _Block) -> str:
    """The Python code of one fenced block, or "" when the block is not Python."""
    text = block.text
    if block.tag in CONSOLE_TAGS or _is_console(text):
        if block.tag and block.tag not in PYTHON_TAGS | CONSOLE_TAGS:
            return ""
        code = _console_code(text)
        return code if _defines_something(code) else ""
    if block.tag in PYTHON_TAGS:
        return text
    if block.tag:
        return ""  # another language, or a shell / output block
    if _parses(text):
        return text if _is_code_like(text) else ""
    # Untagged and not valid Python: keep it only when it clearly starts Python statements
    # (e.g. a cut-off answer), so that a broken solution fails instead of vanishing.
    starts = any(re.match(r"(def |class |import |from \S+ import )", line[:_LINE_START_CHARS])
                 for line in text.splitlines())
    return text if starts else ""


def _is_console(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.lstrip().startswith(">>>")


def _console_code(text: str) -> str:
    """Statements of an interactive session: prompt lines without prompts, results dropped."""
    code = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if _PROMPT.match(stripped):
            code.append(stripped[4:])
    return "\n".join(code)


def _defines_something(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except _PARSE_ERRORS:
        return False
    defining = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
                ast.Assign, ast.AnnAssign)
    return any(isinstance(node, defining) for node in tree.body)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except _PARSE_ERRORS:  # ValueError: null bytes; RecursionError: deep nesting
        return False
    return True


def _is_literal(node: ast.expr) -> bool:
    """A constant, a name, or a container or unary sign of them (iterative: any depth)."""
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, (ast.Constant, ast.Name)):
            continue
        if isinstance(item, ast.UnaryOp):
            todo.append(item.operand)
        elif isinstance(item, (ast.List, ast.Tuple, ast.Set)):
            todo.extend(item.elts)
        elif isinstance(item, ast.Dict):
            todo.extend(k for k in item.keys if k is not None)
            todo.extend(item.values)
        else:
            return False
    return True


def _is_code_like(text: str) -> bool:
    """True unless every statement is a bare literal or name (printed output such as `[1, 2]`)."""
    tree = ast.parse(text)
    return any(not (isinstance(node, ast.Expr) and _is_literal(node.value)) for node in tree.body)


def _longest_parsing_run(lines: list[str]) -> str:
    """The longest run of lines that parses as Python and is code, in an unfenced answer."""
    best, best_size = "", 0
    tries = 0
    i = 0
    while i < len(lines) and tries < MAX_PARSE_TRIES:
        if not _starts_code(lines[i]):
            i += 1
            continue
        # Lines that can continue code: blank, indented, closing brackets, or code starts.
        end = i + 1
        while end < len(lines) and end - i < MAX_RUN_LINES and (
            not lines[end].strip() or lines[end][:1] in " \t)]}" or _starts_code(lines[end])
        ):
            end += 1
        for j in range(end, i, -1):
            tries += 1
            if tries > MAX_PARSE_TRIES:
                break
            text = "\n".join(lines[i:j])
            if _parses(text) and _is_code_like(text):
                size = sum(1 for line in lines[i:j] if line.strip())
                if size > best_size:
                    best, best_size = text, size
                i = j - 1
                break
        i += 1
    return best


def _starts_code(line: str) -> bool:
    return _CODE_START.match(line[:_LINE_START_CHARS]) is not None


def _tidy(code: str) -> str:
    """Without blank lines around it and without trailing spaces."""
    lines = [line.rstrip() for line in code.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)
