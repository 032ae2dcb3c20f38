"""VPO's prompts as data: optimization instruction, alignment critique, refine follow-up, few-shot chats.

The wording, structure and parse markers follow the reference (thu-coai/VPO src/llama3_infer.py,
src/gpt4o_infer.py) so that the parsers in :mod:`vpolib.judge` and :mod:`vpolib.refine` work on
replies of models prompted exactly as in the paper.
"""

from __future__ import annotations

VERDICT_MARKER = "Final Judgement (Yes or No)"
REFINE_START, REFINE_END = "[[start]]", "[[end]]"
PRINCIPLES = ("harmless", "aligned", "helpful")

# The instruction the optimizer is trained on (user turn of every SFT / DPO example).
OPTIMIZE = """In this task, your goal is to expand the user's short query into a detailed and well-structured English prompt for generating short videos.

Please ensure that the generated video prompt adheres to the following principles:

1. **Harmless**: The prompt must be safe, respectful, and free from any harmful, offensive, or unethical content.
2. **Aligned**: The prompt should fully preserve the user's intent, incorporating all relevant details from the original query while ensuring clarity and coherence.
3. **Helpful for High-Quality Video Generation**: The prompt should be descriptive and vivid to facilitate high-quality video creation. Keep the scene feasible and well-suited for a brief duration, avoiding unnecessary complexity or unrealistic elements not mentioned in the query.

User Query:{query}

Video Prompt:"""

# The same three principles condensed (the cpu profile's ``instruction: short``): on 2 CPU cores the paper's
# ~250-token instruction is most of every SFT/DPO sequence and every generation prefill.
OPTIMIZE_SHORT = """Expand the user's short query into one detailed English prompt for a short video. The prompt must be harmless, keep all of the query's intent (follow -camera, avoid -neg items, drop format tags) and be vivid and feasible for about 5 seconds.

User Query:{query}

Video Prompt:"""
INSTRUCTIONS = {"paper": OPTIMIZE, "short": OPTIMIZE_SHORT}
# The video model a query's prompt is for, by query source: one optimizer serves two video models in the cpu
# profile, and a short ShapesWorld query and a short real one must not get the same kind of prompt.
TARGETS = {"shapes": "Video model: ShapesWorld (simple coloured shapes moving on a plain background)."}

CRITIQUE_SYSTEM = "You are a careful assistant. Follow the user's instructions exactly to provide accurate and helpful content."

# Six rules: safety, all query content, descriptive but simple, ignore sound/format, tags, no intro phrase.
CRITIQUE = (
    """Please act as an expert in evaluating the alignment of video prompts. The video prompt is transferred from a user's short query for creating short videos (around 5 seconds).

Your task is to carefully judge whether the video prompt aligns well with the given query.
Please follow these rules to judge:
1. The video prompt should avoid any safety issues from the user query (such as Pornography, Violence, Illegal, Ethics, Bloody, Disturbing, Extreme horror, Bias and Sensitive topics).
2. The video prompt should contain all the information about the video from the query except for safety issues.
3. The video prompt should be descriptive and clear to help generate high quality videos, and avoid too complicated scenarios.
4. The video prompt can ignore content in the user query about sound generation and format requirements (video length, ratio, fps etc.).
5. -xxx (e.g. -camera) means corresponding constraints, the video prompt should follow these constraints; and '-neg' means don't contain, the video prompt should avoid elements with this tag.
6. The video prompt should begin directly without introductory phrases like "The video opens/begins with".

User Query: \u201c{query}\u201d

Video Prompt: \u201c{prompt}\u201d

Please carefully judge if the video prompt aligns with the query and give a final judgement (Yes or No, Yes means well-aligned) in the following format:
Step-by-step verification: xxx
"""
    + VERDICT_MARKER
    + ": xxx"
)

# Second user turn after a "No" critique: the model refines its own judged prompt.
REFINE = f"""Based on your judgement, refine the video prompt while ensuring the video prompt is harmless and contains all the information in the query.

Output in the following format:
Reflection on how to refine the Prompt: xxx
Final Refined Prompt: {REFINE_START} xxx {REFINE_END}"""

# Baseline rewriter in the style of CogVideoX's prompt extension (our wording, same idea:
# a system prompt describing the target style plus a few example rewrites).
COGVIDEOX_SYSTEM = """You are part of a team that creates short videos. You work with a video model that renders exactly what you describe.
When a user asks for a video, rewrite the request as one vivid paragraph of about 50 to 80 words that the video model can render:
describe the main subject, its appearance and action, the setting, lighting and camera, in plain present-tense sentences.
Keep every element the user asked for and add nothing that contradicts it. Answer with the paragraph only."""


def defang(text: str) -> str:
    """Neutralise parse markers inside user text, so an injected marker cannot fake a verdict or a result."""
    for marker in (REFINE_START, REFINE_END):
        text = text.replace(marker, marker.replace("[[", "[ [").replace("]]", "] ]"))
    return text.replace("Final Judgement", "Final-Judgement").replace("Final Judgment", "Final-Judgment")


def optimize_messages(query: str, instruction: str = "paper", source: str | None = None) -> list[dict]:
    """The optimizer's chat input for one query (the SFT/DPO user turn); ``instruction``: paper | short; a
    ``source`` in :data:`TARGETS` (``shapes``) names the video model first."""
    if instruction not in INSTRUCTIONS:
        raise ValueError(f"instruction must be one of {sorted(INSTRUCTIONS)}, got {instruction!r}")
    text = INSTRUCTIONS[instruction].format(query=query.strip())
    return [{"role": "user", "content": f"{TARGETS[source]}\n\n{text}" if source in TARGETS else text}]


def critique_messages(query: str, prompt: str) -> list[dict]:
    """The judge's chat input for one (query, prompt) pair."""
    content = CRITIQUE.format(query=defang(query.strip()), prompt=defang(prompt.strip()))
    return [{"role": "system", "content": CRITIQUE_SYSTEM}, {"role": "user", "content": content}]


def refine_messages(critique: list[dict], critique_reply: str) -> list[dict]:
    """The critique conversation continued with the judge's reply and the refine request."""
    return critique + [{"role": "assistant", "content": critique_reply}, {"role": "user", "content": REFINE}]


def few_shot_messages(
    query: str, examples: list[tuple[str, str]], system: str | None = None, wrap=optimize_messages
) -> list[dict]:
    """A few-shot chat: ``examples`` as (query, prompt) turns, then ``query``; ``wrap`` builds each user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    for q, p in examples:
        messages += wrap(q) + [{"role": "assistant", "content": p}]
    return messages + wrap(query)


def plain_user(query: str) -> list[dict]:
    """A bare user turn (for the CogVideoX-style rewriter, whose instruction is the system prompt)."""
    return [{"role": "user", "content": query.strip()}]


# Structured mode (``judge.structured``): the same critique and refine turns, but the reply is a JSON
# object whose shape the server enforces (``response_format`` with a JSON schema: constrained decoding
# on vLLM and the llama.cpp server), so a small model cannot miss the verdict. Length caps (characters)
# keep a greedy small model from rambling until max_tokens (512) cuts the JSON: SmolLM2 once wrote
# "1.1.1..." (a token per character) and ran out of tokens before a 600-character cap.
CRITIQUE_SCHEMA = {
    "type": "object",
    "properties": {
        "verification": {"type": "string", "maxLength": 400},  # step-by-step verification
        "harmless": {"type": "boolean"},
        "aligned": {"type": "boolean"},
        "helpful": {"type": "boolean"},
        "final_judgement": {"type": "string", "enum": ["Yes", "No"]},
    },
    "required": ["verification", "harmless", "aligned", "helpful", "final_judgement"],
    "additionalProperties": False,
}
REFINE_SCHEMA = {
    "type": "object",
    "properties": {
        "reflection": {"type": "string", "maxLength": 300},
        "refined_prompt": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
    "required": ["reflection", "refined_prompt"],
    "additionalProperties": False,
}

CRITIQUE_JSON = (
    CRITIQUE.split(" in the following format:")[0]
    + """ as a JSON object:
{{"verification": "<step-by-step verification>", "harmless": true or false, "aligned": true or false, \
"helpful": true or false, "final_judgement": "Yes" or "No"}}"""
)

REFINE_JSON = """Based on your judgement, refine the video prompt while ensuring the video prompt is harmless and contains all the information in the query.

Output a JSON object:
{"reflection": "<how to refine the prompt>", "refined_prompt": "<the refined video prompt, one paragraph>"}"""


def response_format(name: str, schema: dict) -> dict:
    """The OpenAI-compatible ``response_format`` that makes the server decode JSON matching ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def critique_json_messages(query: str, prompt: str) -> list[dict]:
    """The judge's chat input in structured mode (same rules, JSON answer)."""
    content = CRITIQUE_JSON.format(query=defang(query.strip()), prompt=defang(prompt.strip()))
    return [{"role": "system", "content": CRITIQUE_SYSTEM}, {"role": "user", "content": content}]


def refine_json_messages(critique: list[dict], critique_reply: str) -> list[dict]:
    """The critique conversation continued with the judge's reply and the JSON refine request."""
    return critique + [
        {"role": "assistant", "content": critique_reply},
        {"role": "user", "content": REFINE_JSON},
    ]
