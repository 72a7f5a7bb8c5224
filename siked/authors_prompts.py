"""The teacher's exemplars and instructions in the authors' prompt style (``authors``).

The SIKeD authors prompt their teacher with eight GSM8K-style problems per strategy
(``dataset_creation/PROMPTS/{COT,L2M,POT}-prompt.txt`` in github.com/shivam0109/SIKeD). These
are siked's own: eight other GSM8K *training* problems (ids below), solved for siked in the
same forms -- CoT steps with ``<<expr=result>>`` calculator annotations, L2M ``Sub-question k``
pairs, plain Python with descriptive names ending in ``answer = ...`` (one solving an equation
with sympy, imported explicitly) -- and each ending with the style's final line
(:class:`siked.styles.PromptStyle`). ``tests/test_strategies.py`` checks every exemplar against
GSM8K's gold answer (programs run in the sandbox); :func:`siked.strategies.exemplar_questions`
gives the questions that a run's training and validation draws leave out
(:func:`siked.loop.split_train_validation`).
"""

from __future__ import annotations

from typing import Any

from siked.styles import AUTHORS
from siked.verify import AUTHORS_ANSWER_MARKER


def _cot(*steps: str, answer: str) -> str:
    return "\n".join([*steps, AUTHORS.final_line(answer)])


def _l2m(*pairs: tuple[str, str], answer: str) -> str:
    return "\n".join([*AUTHORS.l2m_lines(pairs), AUTHORS.final_line(answer)])


def _pot(*lines: str) -> str:
    return "\n".join(lines)


_FINAL = f"'{AUTHORS_ANSWER_MARKER} '"

#: the teacher's instruction per strategy (after ``Instruction:``)
INSTRUCTIONS: dict[str, str] = {
    "cot": f"Solve the math problem step by step, then give the final answer after {_FINAL}.",
    "l2m": (
        "Solve the math problem by splitting it into smaller sub-questions and answering them "
        f"one at a time, then give the final answer after {_FINAL}."
    ),
    "pot": (
        "Solve the math problem by writing Python code that computes the result and stores it "
        "in a variable named 'answer'."
    ),
}

#: eight GSM8K training problems (``id``, the question as GSM8K writes it, the gold answer),
#: each solved in the three forms
PROBLEMS: list[dict[str, Any]] = [
    {
        "id": "gsm8k-train-01235",
        "question": "Penny has $20. Penny buys 4 pairs of socks for $2 a pair and a hat for $7. "
        "How much money does Penny have left?",
        "answer": "5",
        "cot": _cot(
            "The socks cost 4*$2=$<<4*2=8>>8",
            "With the hat she spends $8+$7=$<<8+7=15>>15",
            "Penny has $20-$15=$<<20-15=5>>5 left",
            answer="5",
        ),
        "l2m": _l2m(
            ("How much do the socks cost?", "4*$2=$<<4*2=8>>8"),
            ("How much does Penny spend in all?", "$8+$7=$<<8+7=15>>15"),
            ("How much money does Penny have left?", "$20-$15=$<<20-15=5>>5"),
            answer="5",
        ),
        "pot": _pot(
            "money_at_start = 20",
            "pairs_of_socks = 4",
            "price_per_pair = 2",
            "hat_price = 7",
            "money_spent = pairs_of_socks * price_per_pair + hat_price",
            "money_left = money_at_start - money_spent",
            "answer = money_left",
        ),
    },
    {
        "id": "gsm8k-train-06727",
        "question": "Martha's cat catches 3 rats and 7 birds. Cara's cat catches 3 less than five "
        "times as many animals as Martha's cat. How many animals does Cara's cat catch?",
        "answer": "47",
        "cot": _cot(
            "Martha's cat catches 3+7=<<3+7=10>>10 animals",
            "Five times as many is 5*10=<<5*10=50>>50 animals",
            "Cara's cat catches 3 less than that: 50-3=<<50-3=47>>47 animals",
            answer="47",
        ),
        "l2m": _l2m(
            ("How many animals does Martha's cat catch?", "3+7=<<3+7=10>>10"),
            ("What is five times that number?", "5*10=<<5*10=50>>50"),
            ("How many animals does Cara's cat catch?", "50-3=<<50-3=47>>47"),
            answer="47",
        ),
        "pot": _pot(
            "rats_caught = 3",
            "birds_caught = 7",
            "martha_cat_animals = rats_caught + birds_caught",
            "cara_cat_animals = 5 * martha_cat_animals - 3",
            "answer = cara_cat_animals",
        ),
    },
    {
        "id": "gsm8k-train-04156",
        "question": "Wendy's truck has a gas tank that can hold 20 gallons. She also has a car "
        "with a gas tank that holds 12 gallons. The truck's tank is half full. The car's tank is "
        "1/3 full. If she fills them both up completely, how many gallons does she add?",
        "answer": "18",
        "cot": _cot(
            "The truck has 20/2=<<20/2=10>>10 gallons, so it takes 20-10=<<20-10=10>>10 more",
            "The car has 12/3=<<12/3=4>>4 gallons, so it takes 12-4=<<12-4=8>>8 more",
            "Wendy adds 10+8=<<10+8=18>>18 gallons",
            answer="18",
        ),
        "l2m": _l2m(
            ("How many gallons does the truck need?", "20-20/2=<<20-20/2=10>>10"),
            ("How many gallons does the car need?", "12-12/3=<<12-12/3=8>>8"),
            ("How many gallons does Wendy add in all?", "10+8=<<10+8=18>>18"),
            answer="18",
        ),
        "pot": _pot(
            "truck_tank = 20",
            "car_tank = 12",
            "truck_gas_now = truck_tank / 2",
            "car_gas_now = car_tank / 3",
            "gallons_added = (truck_tank - truck_gas_now) + (car_tank - car_gas_now)",
            "answer = gallons_added",
        ),
    },
    {
        "id": "gsm8k-train-00475",
        "question": "Maggie picked 40 apples. Kelsey picked 28 apples. Layla picked some apples, "
        "too. The three averaged 30 apples picked. How many did Layla pick?",
        "answer": "22",
        "cot": _cot(
            "An average of 30 apples for 3 people is 30*3=<<30*3=90>>90 apples in all",
            "Maggie and Kelsey picked 40+28=<<40+28=68>>68 apples",
            "So Layla picked 90-68=<<90-68=22>>22 apples",
            answer="22",
        ),
        "l2m": _l2m(
            ("How many apples did the three pick in all?", "30*3=<<30*3=90>>90"),
            ("How many apples did Maggie and Kelsey pick together?", "40+28=<<40+28=68>>68"),
            ("How many apples did Layla pick?", "90-68=<<90-68=22>>22"),
            answer="22",
        ),
        "pot": _pot(
            "from sympy import Eq, Symbol, solve",
            "maggie_apples = 40",
            "kelsey_apples = 28",
            "average_apples = 30",
            "layla_apples = Symbol('layla_apples')",
            "equation = Eq((maggie_apples + kelsey_apples + layla_apples) / 3, average_apples)",
            "solution = solve(equation, layla_apples)",
            "answer = solution[0]",
        ),
    },
    {
        "id": "gsm8k-train-03552",
        "question": "There are 60 ridges on a vinyl record. Jerry has 4 cases, each with 3 "
        "shelves that can hold 20 records each. If his shelves are 60% full, how many ridges are "
        "there on all his records?",
        "answer": "8640",
        "cot": _cot(
            "When full, the shelves hold 4*3*20=<<4*3*20=240>>240 records",
            "At 60% full Jerry has 240*60/100=<<240*60/100=144>>144 records",
            "Those records have 144*60=<<144*60=8640>>8640 ridges",
            answer="8640",
        ),
        "l2m": _l2m(
            ("How many records do the shelves hold when full?", "4*3*20=<<4*3*20=240>>240"),
            ("How many records does Jerry have?", "240*60/100=<<240*60/100=144>>144"),
            ("How many ridges are there on all his records?", "144*60=<<144*60=8640>>8640"),
            answer="8640",
        ),
        "pot": _pot(
            "ridges_per_record = 60",
            "cases = 4",
            "shelves_per_case = 3",
            "records_per_shelf = 20",
            "full_capacity = cases * shelves_per_case * records_per_shelf",
            "records_owned = full_capacity * 60 / 100",
            "answer = records_owned * ridges_per_record",
        ),
    },
    {
        "id": "gsm8k-train-04514",
        "question": "Betty ordered 18 items in an online shop via cash on delivery. She ordered 6 "
        "pieces of slippers that cost $2.5 each, 4 pieces of lipstick for $1.25 each, and 8 "
        "pieces of hair color for $3 each. How much did Betty pay in total when it was "
        "delivered?",
        "answer": "44",
        "cot": _cot(
            "The slippers cost 6*$2.5=$<<6*2.5=15>>15",
            "The lipsticks cost 4*$1.25=$<<4*1.25=5>>5",
            "The hair colors cost 8*$3=$<<8*3=24>>24",
            "Betty paid $15+$5+$24=$<<15+5+24=44>>44 in total",
            answer="44",
        ),
        "l2m": _l2m(
            ("How much do the slippers cost?", "6*$2.5=$<<6*2.5=15>>15"),
            ("How much do the lipsticks cost?", "4*$1.25=$<<4*1.25=5>>5"),
            ("How much do the hair colors cost?", "8*$3=$<<8*3=24>>24"),
            ("How much did Betty pay in total?", "$15+$5+$24=$<<15+5+24=44>>44"),
            answer="44",
        ),
        "pot": _pot(
            "slippers_cost = 6 * 2.5",
            "lipstick_cost = 4 * 1.25",
            "hair_color_cost = 8 * 3",
            "total_paid = slippers_cost + lipstick_cost + hair_color_cost",
            "answer = total_paid",
        ),
    },
    {
        "id": "gsm8k-train-00704",
        "question": "Sabrina gave 10 cookies to her brother. Her mother gave Sabrina half the "
        "number of cookies she gave her brother. Then Sabrina gave two-thirds of her cookies to "
        "her sister. If Sabrina had 20 cookies at the start, how many cookies are left with her?",
        "answer": "5",
        "cot": _cot(
            "After giving her brother 10, Sabrina has 20-10=<<20-10=10>>10 cookies",
            "Her mother gives her 10/2=<<10/2=5>>5, so she has 10+5=<<10+5=15>>15 cookies",
            "She gives her sister 15*2/3=<<15*2/3=10>>10 cookies",
            "Sabrina is left with 15-10=<<15-10=5>>5 cookies",
            answer="5",
        ),
        "l2m": _l2m(
            ("How many cookies does Sabrina have after giving 10 away?", "20-10=<<20-10=10>>10"),
            ("How many cookies does her mother give her?", "10/2=<<10/2=5>>5"),
            ("How many cookies does she have then?", "10+5=<<10+5=15>>15"),
            ("How many cookies does she give her sister?", "15*2/3=<<15*2/3=10>>10"),
            ("How many cookies are left with her?", "15-10=<<15-10=5>>5"),
            answer="5",
        ),
        "pot": _pot(
            "cookies_at_start = 20",
            "cookies_to_brother = 10",
            "cookies_from_mother = cookies_to_brother / 2",
            "cookies_now = cookies_at_start - cookies_to_brother + cookies_from_mother",
            "cookies_to_sister = cookies_now * 2 / 3",
            "answer = cookies_now - cookies_to_sister",
        ),
    },
    {
        "id": "gsm8k-train-04775",
        "question": "In 7 years, Kaylee will be 3 times as old as Matt is now. If Matt is "
        "currently 5 years old, how old is Kaylee now?",
        "answer": "8",
        "cot": _cot(
            "In 7 years Kaylee will be 3*5=<<3*5=15>>15 years old",
            "So she is 15-7=<<15-7=8>>8 years old now",
            answer="8",
        ),
        "l2m": _l2m(
            ("How old will Kaylee be in 7 years?", "3*5=<<3*5=15>>15"),
            ("How old is Kaylee now?", "15-7=<<15-7=8>>8"),
            answer="8",
        ),
        "pot": _pot(
            "matt_age_now = 5",
            "kaylee_age_in_7_years = 3 * matt_age_now",
            "kaylee_age_now = kaylee_age_in_7_years - 7",
            "answer = kaylee_age_now",
        ),
    },
]
