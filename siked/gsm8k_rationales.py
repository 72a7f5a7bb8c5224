"""GSM8K's human solutions rewritten into every strategy's format (the gold teacher's data).

GSM8K ships each solution twice: the main file (step-by-step prose with ``<<expr=result>>``
calculator annotations, ending ``#### N``) and the Socratic file (the same steps, each led by a
generated sub-question: ``How many ...? ** step``). From them:

* **cot** -- the main solution without annotations, ``#### N`` replaced by the marker line;
* **l2m** -- the Socratic pairs as ``Q1: ...`` / ``A1: ...`` lines, then the marker line;

in the teacher's prompt style (:mod:`siked.styles`): the ``authors`` style keeps the
calculator annotations, writes ``Sub-question 1: ...`` / ``Answer to Sub-question 1: ...`` and
ends with ``Final Answer: N``, as the exemplars of its prompts do;
* **pot** -- a program built from the annotations: each result becomes a named variable
  (named from its sub-question, else the words around it, else ``v1, v2...``), later
  expressions that reuse an earlier result's number refer to its variable, and the step that
  yields the final answer assigns ``answer``.

Nothing here is trusted: the rationales go through exactly the same filter as an LLM teacher's
(:mod:`siked.teach` validates them and runs the programs in the sandbox against the gold answer).
:class:`siked.engines.gold.GoldEngine` serves them as a teacher engine; :mod:`siked.plan` measures
their lengths. Numbers are written by :func:`siked.text.format_number`.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from siked.data import GSM8KSolutions
from siked.styles import DEFAULT_STYLE, PromptStyle, get_style
from siked.text import collapse_whitespace, format_number, parse_number

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_ENDOFTEXT = re.compile(r"<?\|?endoftext\|?>?")

# ---------------------------------------------------------------------------------------------
# small pure helpers


def strip_annotations(text: str) -> str:
    """Remove ``<<expr=result>>`` calculator annotations.

    >>> strip_annotations("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    'Natalia sold 48/2 = 24 clips in May.'
    """
    return _ANNOTATION.sub("", text)


def split_final(solution: str) -> tuple[list[str], str | None]:
    """The solution's step lines and the raw final answer after ``####`` (None if absent).

    >>> split_final("a = 1\\nb = 2\\n#### 1,200")
    (['a = 1', 'b = 2'], '1,200')
    """
    body, sep, final = solution.rpartition("####")
    if not sep:
        return [ln.strip() for ln in solution.splitlines() if ln.strip()], None
    return [ln.strip() for ln in body.splitlines() if ln.strip()], final.strip()


_NOT_NUMBER_CHARS = re.compile(r"[$%\s]")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")


def final_value(raw: str | None) -> Fraction | None:
    """The exact value of a ``####`` answer (commas, ``$``, ``%`` and a trailing ``.`` allowed).

    >>> final_value("1,200"), final_value("$5."), final_value("x")
    (Fraction(1200, 1), Fraction(5, 1), None)
    """
    if raw is None:
        return None
    s = _NOT_NUMBER_CHARS.sub("", raw).rstrip(".")
    if _PLAIN_NUMBER.fullmatch(s):  # the common case, without verify's full parser
        return Fraction(s)
    return parse_number(s)


# ---------------------------------------------------------------------------------------------
# CoT and L2M


def _style(style: str | PromptStyle) -> PromptStyle:
    return style if isinstance(style, PromptStyle) else get_style(style)


def _step(text: str, style: PromptStyle) -> str:
    return collapse_whitespace(text if style.annotations else strip_annotations(text))


def gold_cot(main: str, style: str | PromptStyle = DEFAULT_STYLE) -> str | None:
    """The CoT rationale of a main GSM8K solution (None when it has no ``####`` answer).

    >>> sol = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\nNatalia sold 48+24 = <<48+24=72>>72 clips.\\n#### 72"
    >>> print(gold_cot(sol))
    Natalia sold 48/2 = 24 clips in May.
    Natalia sold 48+24 = 72 clips.
    The answer is 72.
    >>> print(gold_cot(sol, "authors"))
    Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    Natalia sold 48+24 = <<48+24=72>>72 clips.
    Final Answer: 72
    """
    st = _style(style)
    lines, final = split_final(main)
    value = final_value(final)
    if value is None:
        return None
    steps = [s for ln in lines if (s := _step(ln, st))]
    return "\n".join([*steps, st.final_line(format_number(value))])


def socratic_pairs(socratic: str, annotations: bool = False) -> list[tuple[str, str]]:
    """``(sub-question, answer step)`` pairs of a Socratic solution, annotations removed
    (kept with ``annotations``).

    Junk tokens (``<|endoftext|>``) are dropped; a step without a usable sub-question is joined
    to the previous answer.

    >>> socratic_pairs("How many in May? ** 48/2 = <<48/2=24>>24 in May.\\n#### 24")
    [('How many in May?', '48/2 = 24 in May.')]
    """
    lines, _ = split_final(socratic)
    pairs: list[tuple[str, str]] = []
    for ln in lines:
        q, sep, a = ln.partition(" ** ")
        if not sep:
            q, a = "", ln
        q = collapse_whitespace(_ENDOFTEXT.sub("", q))
        a = collapse_whitespace(a if annotations else strip_annotations(a))
        if not a:
            continue
        if not q or not re.search(r"[A-Za-z]", q):
            if pairs:
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {a}")
            continue
        pairs.append((q, a))
    return pairs


def gold_l2m(socratic: str, style: str | PromptStyle = DEFAULT_STYLE) -> str | None:
    """The L2M rationale of a Socratic GSM8K solution (None without pairs or ``####``).

    >>> sol = "How many in May? ** 48/2 = <<48/2=24>>24.\\nHow many in all? ** 48+24 = <<48+24=72>>72.\\n#### 72"
    >>> print(gold_l2m(sol))
    Q1: How many in May?
    A1: 48/2 = 24.
    Q2: How many in all?
    A2: 48+24 = 72.
    The answer is 72.
    >>> print(gold_l2m(sol, "authors"))
    Sub-question 1: How many in May?
    Answer to Sub-question 1: 48/2 = <<48/2=24>>24.
    Sub-question 2: How many in all?
    Answer to Sub-question 2: 48+24 = <<48+24=72>>72.
    Final Answer: 72
    """
    st = _style(style)
    _, final = split_final(socratic)
    value = final_value(final)
    pairs = socratic_pairs(socratic, st.annotations)
    if value is None or not pairs:
        return None
    return "\n".join([*st.l2m_lines(pairs), st.final_line(format_number(value))])


# ---------------------------------------------------------------------------------------------
# PoT: arithmetic expressions

_NUM = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def normalize_expr(raw: str) -> str | None:
    """A calculator expression as plain arithmetic (numbers, ``+ - * / **``, parentheses), or
    None when nothing sensible is left. Handles ``$``, thousands commas, ``%``, ``x``/``×``/``÷``,
    unicode minus, ``^`` and stray characters.

    >>> normalize_expr("$1,200 x 20%")
    '1200 * (20 / 100)'
    >>> normalize_expr("3−1.5÷.5")
    '3 - 1.5 / 0.5'
    >>> normalize_expr("2^3") , normalize_expr("abc")
    ('2 ** 3', None)
    """
    s = raw.strip()
    for a, b in (("−", "-"), ("–", "-"), ("—", "-"), ("×", "*"), ("÷", "/"), ("^", "**")):
        s = s.replace(a, b)
    s = re.sub(r"(?<=[\d)%])\s*[xX]\s*(?=[\d(.$])", "*", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators
    s = re.sub(r"(\d*\.?\d+)\s*%", r"(\1/100)", s)
    s = re.sub(r"[^0-9.+\-*/()]", "", s)  # $, units, stray characters, spaces
    if not s or not _NUM.search(s):
        return None
    s = re.sub(r"(?<![\d.])0+(?=\d)", "", s)  # 05 -> 5 (a syntax error in Python)
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError):
        return None
    if not _arithmetic_only(tree.body):
        return None
    return _spaced(s)


def _arithmetic_only(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub | ast.UAdd) and _arithmetic_only(node.operand)
    if isinstance(node, ast.BinOp):
        ops = ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow
        return (
            isinstance(node.op, ops)
            and _arithmetic_only(node.left)
            and _arithmetic_only(node.right)
        )
    return False


_TOKEN = re.compile(r"\d+\.?\d*|\.\d+|\*\*|[-+*/()]")


def _number(tok: str) -> str:
    """Canonical decimal text: ``.5`` -> ``0.5``, ``5.`` -> ``5``."""
    if tok.startswith("."):
        tok = "0" + tok
    return tok.rstrip(".")


def _spaced(s: str) -> str:
    """Tokens of valid arithmetic joined with spaces around binary operators.

    >>> _spaced("-(3+.5)*2**2/-1")
    '-(3 + 0.5) * 2 ** 2 / -1'
    """
    out: list[str] = []
    prev = ""  # previous token
    for tok in _TOKEN.findall(s):
        if tok[0].isdigit() or tok[0] == ".":
            out.append(_number(tok))
        elif tok in "+-" and (not prev or prev in {"+", "-", "*", "/", "**", "("}):
            out.append(tok)  # unary sign, glued to its operand
        elif tok in "()":
            out.append(tok)
        else:
            out.append(f" {tok} ")
        prev = tok
    return "".join(out).strip()


def exact_value(expr: str) -> Fraction | None:
    """Evaluate plain arithmetic exactly (decimal literals read as written); None on errors.

    >>> exact_value("0.2 * 50"), exact_value("10 / 4"), exact_value("1 / 0")
    (Fraction(10, 1), Fraction(5, 2), None)
    """
    try:
        tree = ast.parse(_quote_numbers(expr), mode="eval")
    except (SyntaxError, ValueError):
        return None
    try:
        return _eval(tree.body)
    except (ZeroDivisionError, ValueError, OverflowError, TypeError):
        return None


def _quote_numbers(expr: str) -> str:
    # keep the decimal text of each literal so 0.1 stays 1/10 (not the binary float)
    return _NUM.sub(lambda m: f"'{m.group(0)}'", expr)


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow) and b.denominator == 1 and abs(b) <= 64:
            r = a**b.numerator
            return r if isinstance(r, Fraction) else Fraction(r)
    raise ValueError("not plain arithmetic")


# ---------------------------------------------------------------------------------------------
# PoT: naming


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _wordset(
    """a an the of to in on at by for from with and or but if then than so as is are was were be
    been being am do does did done has have had will would shall should can could may might must
    how many much what which who whom whose when where why there here this that these those it its
    he she they we you i me him her them us his hers their theirs our your my mine each every
    per total all altogether some any more less left after before into out up down over under
    about get gets got make makes made take takes took need needs needed one also just only now
    find calculate compute number amount value result let lets x"""
)
#: capitalised words that are not names of people or places (kept in variable names)
_CALENDAR = _wordset(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday"""
)
_RESERVED = frozenset(dir(builtins)) | {"answer", "math", "fractions", "decimal", "sympy"}


def name_from_words(text: str, max_words: int = 4) -> str | None:
    """A snake_case variable name from the content words of ``text`` (None if none).

    Proper nouns (capitalised words not at the start) are dropped when other words remain.

    >>> name_from_words("How many clips did Natalia sell in May?")
    'clips_sell_may'
    >>> name_from_words("How much does Weng earn per minute?")
    'earn_minute'
    >>> name_from_words("How many pages are left to be read?")
    'pages_read'
    >>> name_from_words("What is 5 + 3?") is None
    True
    """
    tokens = re.findall(r"[A-Za-z][A-Za-z']*", text)
    content: list[tuple[str, bool]] = []  # (word, is a proper noun)
    for i, w in enumerate(tokens):
        wl = w.lower().replace("'s", "").replace("'", "")
        calendar = w[0].isupper() and wl in _CALENDAR  # "May" the month, not the verb
        if len(wl) > 1 and (calendar or wl not in _STOPWORDS):
            content.append((wl, i > 0 and w[0].isupper() and not calendar))
    common = [w for w, proper in content if not proper] or [w for w, _ in content]
    words = common[:max_words]
    if not words:
        return None
    name = "_".join(words)
    return name if name.isidentifier() else None


def _words_after(text: str) -> str:
    """The words right after a result: up to the next number, ``=`` or punctuation."""
    m = re.match(r"[\s$\d.,%]*([A-Za-z][A-Za-z' -]*)", text)
    return m.group(1) if m else ""


def _words_before(text: str) -> str:
    """The words of the clause before an expression (numbers and operators dropped)."""
    clause = re.split(r"[.;:!?]\s", text)[-1]
    return " ".join(re.findall(r"[A-Za-z][A-Za-z']*", clause)[-4:])


def unique_name(candidates: Sequence[str | None], taken: set[str], index: int) -> str:
    """The first usable candidate (made unique with ``_2``, ``_3``...), else ``v{index}``.

    >>> unique_name(["clips", None], {"clips"}, 3), unique_name([None, "sum"], set(), 2)
    ('clips_2', 'sum_value')
    """
    for cand in candidates:
        if not cand:
            continue
        cand = cand[:40].rstrip("_")
        if keyword.iskeyword(cand) or cand in _RESERVED:
            cand = f"{cand}_value"
        if not cand.isidentifier():
            continue
        name, k = cand, 2
        while name in taken:
            name, k = f"{cand}_{k}", k + 1
        return name
    name, k = f"v{index}", 2
    while name in taken:
        name, k = f"v{index}_{k}", k + 1
    return name


# ---------------------------------------------------------------------------------------------
# PoT: the program


@dataclass
class Step:
    """One computation: ``name = expr`` whose exact value is ``value``."""

    name: str
    expr: str  # Python expression (may reference earlier steps' names)
    value: Fraction


def _render_expr(expr: str, steps: Sequence[Step], question_numbers: set[Fraction]) -> str:
    """Replace numbers that repeat an earlier result by that result's variable. A number also
    given in the question stays literal, except its first use when it is the result of the
    step just before."""

    ambiguous_used = False

    def sub(m: re.Match[str]) -> str:
        nonlocal ambiguous_used
        value = Fraction(m.group(0))
        if value in question_numbers:
            # both a given number and the previous result: the first use is the result
            if steps and steps[-1].value == value and not ambiguous_used:
                ambiguous_used = True
                return steps[-1].name
            return m.group(0)
        for step in reversed(steps):
            if step.value == value:
                return step.name
        return m.group(0)

    return _NUM.sub(sub, expr)


def _fit_stated(expr: str, computed: Fraction, stated: Fraction) -> str | None:
    """An expression equal to the stated (rounded) result of ``expr``, or None."""
    if computed == stated:
        return expr
    places = 0
    while (stated * 10**places).denominator != 1 and places < 10:
        places += 1
    if round(computed, places) == stated:
        return f"round({expr}, {places})" if places else f"round({expr})"
    return None


def _question_numbers(question: str) -> set[Fraction]:
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", question)
    return {Fraction(m) for m in _NUM.findall(text)}


_LEX = re.compile(
    r"(?P<num>\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)%?)|(?P<op>\*\*|[-+*/×÷−–^])|(?P<x>\b[xX]\b)"
    r"|(?P<lp>\()|(?P<rp>\))|(?P<eq>=)|(?P<word>[A-Za-z][A-Za-z']*)|(?P<other>[^\s$])"
)


def _lex(text: str) -> list[tuple[str, str, int, int]]:
    """``(kind, text, start, end)`` tokens; a standalone ``x`` is the multiplication sign."""
    out = []
    for m in _LEX.finditer(text):
        kind = m.lastgroup or "other"
        out.append(("op" if kind == "x" else kind, m.group(0), m.start(), m.end()))
    return out


def plain_equations(text: str, max_unit_words: int = 3) -> list[tuple[str, str, int, int]]:
    """Equations written without annotation, as ``(expression, result, start, end)``.

    Unit words after a number (``250 calories``) are skipped; a ``* 100%`` that turns a ratio
    into percent counts as ``* 100``. Runs in linear time (no backtracking regex).

    >>> [e[:2] for e in plain_equations("So 250 calories / 1250 calories * 100% = 20%, and 4+6=10.")]
    [('250 / 1250 * 100', '20'), ('4 + 6', '10')]
    """
    toks = _lex(text)
    found = []
    for i, (kind, _, _, _) in enumerate(toks):
        if kind != "eq" or i + 1 >= len(toks):
            continue
        # the result: a number right after "=", maybe negative
        j, sign = i + 1, ""
        if toks[j][1] in "-−" and j + 1 < len(toks):
            j, sign = j + 1, "-"
        if toks[j][0] != "num":
            continue
        result = sign + toks[j][1].strip("$%").replace(",", "")
        # the expression: walk back over numbers, operators, parentheses and short unit runs
        parts: list[tuple[str, str]] = []
        k = i - 1
        while k >= 0:
            kind_k = toks[k][0]
            if kind_k == "word":
                run = 0
                while k - run >= 0 and toks[k - run][0] == "word":
                    run += 1
                if run > max_unit_words or k - run < 0 or toks[k - run][0] != "num":
                    break
                k -= run
                continue
            if kind_k not in ("num", "op", "lp", "rp"):
                break
            parts.append((kind_k, toks[k][1]))
            k -= 1
        parts.reverse()
        while parts and parts[0][0] in ("op", "rp"):
            parts.pop(0)
        if sum(kind == "num" for kind, _ in parts) < 2 or not any(kd == "op" for kd, _ in parts):
            continue
        raw = " ".join(t for _, t in parts)
        raw = re.sub(r"\*\s*100%", "* 100", raw)
        expr = normalize_expr(raw)
        while expr is None and parts and parts[0][0] == "lp":  # unbalanced "(" on the left
            parts.pop(0)
            expr = normalize_expr(re.sub(r"\*\s*100%", "* 100", " ".join(t for _, t in parts)))
        if expr is not None:
            found.append((expr, result, toks[k + 1][2] if k + 1 < len(toks) else 0, toks[j][3]))
    return found


def _parse_annotation(ann: str) -> tuple[str | None, Fraction | None]:
    expr_raw, sep, res_raw = ann.rpartition("=")
    if not sep:
        expr_raw, res_raw = ann, ""
    return normalize_expr(expr_raw), final_value(res_raw) if res_raw.strip() else None


def program_steps(lines: Sequence[tuple[str | None, str]], question: str = "") -> list[Step]:
    """Steps from solution lines ``(sub-question or None, text with annotations)``.

    >>> [(s.name, s.expr) for s in program_steps([("How many clips in May?", "48/2 = <<48/2=24>>24 clips."), (None, "48+24 = <<48+24=72>>72 clips in all.")], "sold 48 clips")]
    [('clips_may', '48 / 2'), ('clips', '48 + clips_may')]
    """
    qnums = _question_numbers(question)
    steps: list[Step] = []
    taken: set[str] = set()
    for sub_question, text in lines:
        matches = list(_ANNOTATION.finditer(text))
        for k, m in enumerate(matches):
            expr, stated = _parse_annotation(m.group(1))
            computed = exact_value(expr) if expr else None
            if computed is None or expr is None:
                if stated is None:
                    continue
                expr, computed = format_number(stated), stated
            if stated is not None and computed != stated:
                fitted = _fit_stated(expr, computed, stated)
                expr, computed = (fitted, stated) if fitted else (format_number(stated), stated)
            last_in_line = k == len(matches) - 1
            candidates = [
                name_from_words(sub_question) if sub_question and last_in_line else None,
                name_from_words(_words_after(text[m.end() :]), 3),
                name_from_words(_words_before(text[: m.start()]), 3),
            ]
            name = unique_name(candidates, taken, len(steps) + 1)
            taken.add(name)
            steps.append(Step(name, _render_expr(expr, steps, qnums), computed))
    return steps


def plain_equation_steps(lines: Sequence[str], steps: list[Step], question: str = "") -> list[Step]:
    """Steps for equations written without an annotation (``20/4 = $5``) whose result is not
    already a step's value; appended after ``steps``.

    >>> [(s.name, s.expr) for s in plain_equation_steps(["Sam memorized 4+6=10 digits."], [Step("digits", "24 / 6", Fraction(4))])]
    [('digits', '24 / 6'), ('digits_2', 'digits + 6')]
    """
    qnums = _question_numbers(question)
    out = list(steps)
    taken = {s.name for s in out}
    known = {s.value for s in out}
    for line in lines:
        text = strip_annotations(line)
        for expr, result, start, end in plain_equations(text):
            stated = final_value(result)
            if stated is None or stated in known:
                continue
            computed = exact_value(expr)
            if computed != stated:
                continue
            candidates = [
                name_from_words(_words_after(text[end:]), 3),
                name_from_words(_words_before(text[:start]), 3),
            ]
            name = unique_name(candidates, taken, len(out) + 1)
            taken.add(name)
            known.add(stated)
            out.append(Step(name, _render_expr(expr, out, qnums), stated))
    return out


def render_program(steps: Sequence[Step], target: Fraction | None) -> str | None:
    """The program: steps up to the last one whose value is ``target`` (else all of them), the
    last one assigning ``answer``. None without steps."""
    if not steps:
        return None
    end = len(steps)
    if target is not None:
        hits = [i for i, s in enumerate(steps) if s.value == target]
        if hits:
            end = hits[-1] + 1
    body = list(steps[:end])
    final = body.pop()
    lines = [f"{s.name} = {s.expr}" for s in body]
    lines.append(f"answer = {final.expr}")
    return "\n".join(lines)


def gold_pot(main: str, socratic: str = "", question: str = "") -> str | None:
    """A PoT program from a GSM8K solution's calculator annotations (None if it has none).

    Uses the Socratic solution when given (its sub-questions name the variables).

    >>> print(gold_pot("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\\n#### 10", question="Weng earns $12 an hour. She did 50 minutes."))
    minute = 12 / 60
    answer = minute * 50
    """
    source = socratic if socratic.strip() else main
    lines, final = split_final(source)
    target = final_value(final)
    rows: list[tuple[str | None, str]] = []
    for ln in lines:
        q, sep, a = ln.partition(" ** ")
        rows.append((collapse_whitespace(_ENDOFTEXT.sub("", q)), a) if sep else (None, ln))
    steps = program_steps(rows, question)
    if target is not None and all(s.value != target for s in steps):
        steps = plain_equation_steps([a for _, a in rows], steps, question)
    return render_program(steps, target)


#: strategy -> the rationale of a GSM8K problem ``(solutions, question, style) -> text | None``
BUILDERS: dict[str, Callable[[GSM8KSolutions, str, PromptStyle], str | None]] = {
    "cot": lambda sol, q, style: gold_cot(sol.main, style),
    "l2m": lambda sol, q, style: gold_l2m(sol.socratic, style),
    "pot": lambda sol, q, style: gold_pot(sol.main, sol.socratic, q),  # plain Python in any style
}


def gold_rationale(
    solutions: GSM8KSolutions,
    strategy: str,
    question: str = "",
    style: str | PromptStyle = DEFAULT_STYLE,
) -> str | None:
    """The rationale of one GSM8K problem in ``strategy``'s format in prompt style ``style``,
    or None (no builder for the strategy, or the solution cannot be rewritten).

    >>> from siked.data import GSM8KSolutions
    >>> print(gold_rationale(GSM8KSolutions("2+3 = <<2+3=5>>5 apples.\\n#### 5", ""), "cot"))
    2+3 = 5 apples.
    The answer is 5.
    """
    builder = BUILDERS.get(strategy)
    return None if builder is None else builder(solutions, question, _style(style))
