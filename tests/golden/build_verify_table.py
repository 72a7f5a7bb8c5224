"""Build tests/golden/verify_table.jsonl (tests/test_verify_forms.py): every verdict and answer
is written by construction (a rendered value against itself and against another value), not
copied from the verifier; then Math-Verify judges each case and the rows where it differs get
the id of the documented choice that explains it (docs/verify.md), in ``mv``.

    python tests/golden/build_verify_table.py      # needs math-verify (pip install 'siked[verify]')

Hand-check a rebuilt table's diff before committing it: a case the verifier fails is a bug to fix,
not a row to change.
"""

import collections
import json
from fractions import Fraction as F
from pathlib import Path

from siked.text import format_number
from siked.verify import MathVerifyWorker, truncate

TABLE = Path(__file__).with_name("verify_table.jsonl")

rows = []


def add(text, gold, correct, answer=None, note=""):
    rows.append({"text": text, "gold": gold, "correct": correct, "answer": answer, "note": note})


def fmt(x):
    return format_number(F(x))


def pair(text, value, wrong, note=""):
    """a right case (gold = value) and a wrong one (gold = wrong): the reading stays value"""
    a = fmt(value)
    add(text, fmt(value), True, a, note)
    add(text, fmt(wrong), False, a, note)


# --- the four cases of issue 32
pair(r"$\frac3{3} $", 1, 3, "issue 32")
pair(r"$x\approx11$", 11, 1, "issue 32")
pair(
    r"The house is now worth $\boxed{\$16,\!386.20}$ after the repairs.", "16386.20", 16, "issue 32"
)
pair("1 000", 1000, 0, "issue 32")

# --- fractions in LaTeX
fracs = [(1, 2), (3, 4), (7, 2), (5, 8), (2, 3), (9, 4)]
for a, b in fracs:
    v = F(a, b)
    w = F(a + 1, b)
    for form in (
        r"\frac{%d}{%d}",
        r"\dfrac{%d}{%d}",
        r"\tfrac{%d}{%d}",
        r"\cfrac{%d}{%d}",
        r"\frac%d%d",
        r"\frac %d %d",
        r"\frac%d{%d}",
        r"\frac{%d}%d",
        r"\frac { %d } { %d }",
    ):
        latex = form % (a, b)
        pair(f"The answer is ${latex}$.", v, w, "fraction")
    pair(rf"So each share is \boxed{{\frac{{{a}}}{{{b}}}}}", v, w, "fraction")
    pair(rf"The answer is $-\frac{{{a}}}{{{b}}}$.", -v, v, "negative fraction")
    pair(rf"The answer is $\frac{{-{a}}}{{{b}}}$.", -v, v, "negative numerator")
    pair(rf"The answer is \left(\frac{{{a}}}{{{b}}}\right).", v, w, "left/right")
# mixed numbers
for whole, a, b in [(3, 1, 2), (1, 3, 4), (2, 2, 3), (10, 1, 4)]:
    v = whole + F(a, b)
    pair(rf"The answer is ${whole}\frac{{{a}}}{{{b}}}$ cups.", v, whole, "mixed LaTeX")
    pair(rf"The answer is ${whole} \frac{{{a}}}{{{b}}}$ cups.", v, whole, "mixed LaTeX, a space")
    pair(rf"$\boxed{{{whole}\dfrac{{{a}}}{{{b}}}}}$", v, F(a, b), "mixed in a box")
    pair(f"The answer is {whole} {a}/{b} cups.", v, whole, "mixed plain")
pair(r"The answer is $-3\frac{1}{2}$.", F(-7, 2), F(-5, 2), "negative mixed")

# --- thousands separators in every style
for n in (1000, 16386, 1200000, 45500):
    s = f"{n:,}"
    w = n + 1
    styles = {
        "comma": s,
        "latex brace": s.replace(",", "{,}"),
        "latex thin": s.replace(",", r"\,"),
        "comma negthin": s.replace(",", r",\!"),
        "negthin comma": s.replace(",", r"\!,\!"),
        "tilde": s.replace(",", "~"),
        "latex space": s.replace(",", "\\ "),
        "plain space": s.replace(",", " "),
        "no-break space": s.replace(",", "\u00a0"),
        "thin space": s.replace(",", "\u2009"),
        "narrow no-break": s.replace(",", "\u202f"),
        "figure space": s.replace(",", "\u2007"),
    }
    for name, t in styles.items():
        pair(f"The answer is {t}.", n, w, f"thousands: {name}")
    pair(rf"The total is $\boxed{{{styles['latex brace']}}}$.", n, w, "thousands in a box")
    pair(f"It costs ${styles['comma']} in all.", n, w, "thousands, last number")
    pair(f"So she pays {styles['plain space']} dollars.", n, w, "space thousands, last number")
# money with cents
for t, v in [
    (r"\$16,\!386.20", "16386.20"),
    (r"\$1{,}200.50", "1200.5"),
    (r"\$ 18.00", 18),
    (r"18.50\,\$", "18.5"),
    ("$0.75", "0.75"),
    (r"\$0.75", "0.75"),
]:
    pair(f"The answer is {t}.", v, F(v) + 1, "money")
    pair(rf"\boxed{{{t}}}", v, F(v) + 1, "money in a box")

# --- LaTeX decorations around an integer
for v in (18, 72, 5, 240, -3):
    w = v + 10
    forms = [
        rf"\boxed{{{v}}}",
        rf"\boxed{{\boxed{{{v}}}}}",
        rf"\fbox{{{v}}}",
        rf"$\boxed{{{v}}}$",
        rf"\[ \boxed{{{v}}} \]",
        rf"$$\boxed{{{v}}}$$",
        rf"\boxed{{{v} \text{{ apples}}}}",
        rf"\boxed{{{v}\ \text{{apples}}}}",
        rf"\boxed{{\text{{{v} apples}}}}",
        rf"\boxed{{{v}\,\text{{cm}}}}",
        rf"\boxed{{\mathbf{{{v}}}}}",
        rf"\boxed{{\textbf{{{v}}}}}",
        rf"\boxed{{\left({v}\right)}}",
        rf"\boxed{{x = {v}}}",
        rf"\boxed{{x \approx {v}}}",
        rf"\boxed{{{v}^\circ}}",
        rf"\boxed{{{v}^{{\circ}}}}",
        rf"\boxed{{{v}\%}}",
        rf"\boxed{{{v}\text{{ dollars}}}}",
        rf"\boxed {{ {v} }}",
    ]
    for f in forms:
        pair(f"Adding everything up, 1 + 2 = 3 and so on. {f}", v, w, "boxed form")
    for f in [
        rf"${v}$",
        rf"\({v}\)",
        rf"$x = {v}$",
        rf"$x\approx{v}$",
        rf"$x \approx {v}$",
        rf"$\approx {v}$",
        rf"${v}\text{{ m}}$",
        rf"${v}\%$",
        rf"$\mathbf{{{v}}}$",
    ]:
        pair(f"The answer is {f}.", v, w, "marker + LaTeX")

# --- Markdown and prose
for v in (18, 1250, 7, -4, "2.5"):
    w = F(v) + 1
    forms = [
        f"**Final Answer:** {v}",
        f"**Final Answer**: {v}",
        f"**Final answer:** **{v}**",
        f"Final Answer: {v}",
        f"### Final Answer\n\n{v}",
        f"## Final Answer\n{v} apples",
        f"**Final Answer**\n\n{v}",
        f"**The answer is {v}.**",
        f"**The answer is:** {v}",
        f"The answer is **{v}**.",
        f"The final answer is ${v}$.",
        f"The final answer is: {v}",
        f"The final answer is ${v}$. I hope it is correct.",
        rf"Final Answer: The final answer is $\boxed{{{v}}}$. I hope it is correct.",
        f"The answer is {v} apples.",
        f"The answer is {v}!",
        f"The answer is ({v}).",
        f"The answer is {v};",
        f"The answer is: {v}",
        f"the answer is {v}",
        f"#### {v}",
        f"So the answer is {v} dollars per week.",
        f"The answer is {v}\u00a0km.",
        f"The answer is *{v}*.",
        f"The answer is __{v}__.",
        f"The answer is `{v}`.",
    ]
    for f in forms:
        pair(f"First, 3 + 4 = 7. Then 7 * 2 = 14.\n{f}", v, w, "markdown / prose")
    pair(f"We compute 2 + 2 = 4.\n\n**{v}**", v, w, "bold number only")

# --- whole responses in the styles of instruct models and LLM teachers
LLAMA = (
    "## Step 1: Eggs left to sell\nJanet's ducks lay 16 eggs; she eats 3 and bakes with 4, "
    "so $16 - 3 - 4 = 9$ eggs are left.\n\n## Step 2: Daily income\nShe sells them at "
    "\\$2 each: $9 \\times 2 = {v}$.\n\nThe final answer is: $\\boxed{{{v}}}$"
)
QWEN = (
    "To find the income, we first compute the eggs left:\n\\[\n16 - 3 - 4 = 9\n\\]\n"
    "Then multiply by the price:\n\\[\n9 \\times 2 = {v}\n\\]\nThus, Janet makes "
    "\\(\\boxed{{{v}}}\\) dollars every day."
)
GPT = (
    "**Step 1.** Eggs left: 16 − 3 − 4 = 9.\n\n**Step 2.** Income: 9 × \\$2 = \\${v}.\n\n"
    "### Final Answer\n\n**\\${v}**"
)
PHI = (
    "Janet sells 16 - 3 - 4 = 9 eggs at $2 each, which is 9 * 2 = {v} dollars.\n\n"
    "**Final Answer:** ${v}"
)
MINERVA = (
    "Janet sells $16-3-4=9$ eggs for $\\$2$ each, so she makes $9\\cdot2=\\${v}$.\n"
    "Final Answer: The final answer is ${v}$. I hope it is correct."
)
SMOL = "She has 16 - 3 - 4 = 9 eggs. 9 x 2 = {v}. So she makes {v} dollars a day."
for style, tpl in [
    ("llama", LLAMA),
    ("qwen", QWEN),
    ("gpt", GPT),
    ("phi", PHI),
    ("minerva", MINERVA),
    ("small model", SMOL),
]:
    for v in (18, 1250, "16386.20"):
        shown = (
            f"{int(F(v)):,}"
            if F(v).denominator == 1
            else "16,\\!386.20"
            if style != "small model"
            else "16386.20"
        )
        pair(tpl.format(v=shown), v, F(v) + 2, f"response: {style}")
pair(
    "The total is \\$70{,}000.\n\n**Final Answer**\n\\[\n\\boxed{70,\\!000}\n\\]",
    70000,
    7000,
    "response: heading then display box",
)
pair(
    "Each of the 3 friends gets $\\frac{12}{4} = 3$ slices.\n\nThe answer is $3$.",
    3,
    4,
    "response: marker after LaTeX work",
)
pair("Thus $x = \\frac{48}{2} = 24$.", 24, 48, "response: result after =")
pair(
    "So she needs $\\left(\\frac{3}{4}\\right) \\times 8 = 6$ cups.\n\\boxed{6}",
    6,
    8,
    "response: box after work",
)
pair("The answer is $5\\,\\%$ of the total.", 5, "0.05", "response: spaced percent")

# --- deliberate choices (see docs/verify.md)
add("The answer is 25%.", "0.25", False, "25", "percent: no x100")
add("The answer is 50%.", "0.5", False, "50", "percent: no x100")
add(r"The answer is $12.5\%$.", "0.125", False, "12.5", "percent: no x100")
add("The answer is 25%.", "25", True, "25", "percent as written")
add("The answer is 3 + 4.", "7", False, "3", "no arithmetic")
add(r"\boxed{3 + 4}", "7", False, "3", "no arithmetic")
add(r"\boxed{2 \times 9}", "18", False, "2", "no arithmetic")
add(r"The answer is $6 \cdot 3 = 18$.", "18", True, "18", "result after =")
add("The answer is 48/2 = 24.", "24", True, "24", "result after =")
add("The answer is 1,5.", "1.5", False, "1", "decimal comma")
add("The answer is 2,50 euros.", "2.5", False, "2", "decimal comma")
add("The answer is 0.33.", "1/3", False, "0.33", "exact")
add(r"The answer is $\frac{10}{3} \approx 3.33$.", "10/3", False, "3.33", "approx: the final value")
add(r"The answer is $\frac{10}{3} \approx 3.33$.", "3.33", True, "3.33", "approx: the final value")
add(r"\boxed{5} was my first guess. The answer is 6.", "6", True, "6", "marker beats boxed")
add(r"\boxed{5} was my first guess. The answer is 6.", "5", False, "6", "marker beats boxed")
add("The answer is 5. Wait, I forgot the tip. The answer is 7.", "7", True, "7", "last marker")
add("The answer is 5. Wait, I forgot the tip. The answer is 7.", "5", False, "7", "last marker")
add("The answer is 50 cents.", "0.5", False, "50", "units are not converted")
add("The answer is 2 hours.", "120", False, "2", "units are not converted")
add("The answer is 3 100-dollar bills.", "3", False, "3100", "space thousands")
add("The answer is 1 1/2 cups.", "1.5", True, "1.5", "mixed number")
add("The answer is 12.", "12.0", True, "12", "exact")
add("The answer is 0.1 + 0.2 = 0.30000000000000004", "0.3", False, "0.30000000000000004", "exact")
add("The answer is seventy-two.", "72", False, None, "no number words")
add("I am not sure.", "5", False, None, "no number")
add("The answer is x.", "5", False, None, "no number")
add(r"\boxed{\text{no solution}}", "5", False, None, "no number")


# --- tag the rows where Math-Verify disagrees with the choice (docs/verify.md) that explains it


def tag(r):
    n, t = r["note"], r["text"]
    if "%" in t:
        return "percent"
    if n.startswith("thousands: ") and any(c in t for c in "\u00a0\u2009\u202f\u2007"):
        return "unicode-spaces"
    if n.startswith("response") and ("\\$" in t or "\\!" in t):
        return "latex-in-prose"
    if "\\text{" in t and "boxed" in t:
        return "text-in-box"
    simple = {
        "mixed plain": "mixed-number",
        "mixed number": "mixed-number",
        "no arithmetic": "no-arithmetic",
        "decimal comma": "decimal-comma",
        "approx: the final value": "approx-final",
        "marker beats boxed": "marker-first",
        "exact": "exact-text",
        "markdown / prose": "emphasis",
    }
    if n in simple:
        return simple[n]
    if n.startswith("thousands: ") or n == "money" or "fbox" in t:
        return "latex-in-prose"
    return "UNKNOWN"


with MathVerifyWorker() as w:
    for r in rows:
        g = fmt(r["gold"])
        mv = w.ask(truncate(r["text"]), g, 10)
        if mv != r["correct"]:
            r["mv"] = tag(r)
unknown = [r for r in rows if r.get("mv") == "UNKNOWN"]
assert not unknown, f"Math-Verify differs where no documented choice explains it: {unknown}"
with TABLE.open("w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(len(rows), "cases;", collections.Counter(r.get("mv") for r in rows))
