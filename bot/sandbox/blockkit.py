"""Block Kit limit checks and a blocks-to-plain-text flattener.

The checks mirror the limits Slack enforces server-side (and that slack_sdk.models.blocks
validates), so the fake Slack rejects what real Slack would reject. Problem texts follow
Slack's own wording: ``"must be less than 3001 characters [json-pointer:/blocks/0/text/text]"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

MAX_MESSAGE_BLOCKS: Final = 50
MAX_VIEW_BLOCKS: Final = 100
MAX_MESSAGE_TEXT: Final = 40_000
# Slack answers msg_blocks_too_long somewhere above ~13k characters (undocumented); the
# documented cumulative limit for markdown blocks is 12,000. 12,000 serialized is a safe floor.
MAX_SERIALIZED_BLOCKS: Final = 12_000
MAX_MARKDOWN_TOTAL: Final = 12_000

MAX_SECTION_TEXT: Final = 3000
MAX_SECTION_FIELDS: Final = 10
MAX_SECTION_FIELD_TEXT: Final = 2000
MAX_HEADER_TEXT: Final = 150
MAX_MARKDOWN_TEXT: Final = 12_000
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_ACTIONS_ELEMENTS: Final = 25
MAX_BLOCK_ID: Final = 255
MAX_ACTION_ID: Final = 255
MAX_BUTTON_TEXT: Final = 75
MAX_BUTTON_VALUE: Final = 2000
MAX_URL: Final = 3000
MAX_IMAGE_ALT_TEXT: Final = 2000
MAX_IMAGE_TITLE: Final = 2000
MAX_INPUT_LABEL: Final = 2000
MAX_INPUT_HINT: Final = 2000
MAX_OPTION_TEXT: Final = 75
MAX_OPTION_VALUE: Final = 150
MAX_SELECT_OPTIONS: Final = 100
MAX_OVERFLOW_OPTIONS: Final = 5
MAX_CONFIRM_TITLE: Final = 100
MAX_CONFIRM_TEXT: Final = 300
MAX_CONFIRM_BUTTON: Final = 30
MAX_VIEW_TITLE: Final = 24
MAX_VIEW_BUTTON: Final = 24
MAX_PRIVATE_METADATA: Final = 3000
MAX_CALLBACK_ID: Final = 255

INVALID_BLOCKS: Final = "invalid_blocks"
MSG_TOO_LONG: Final = "msg_too_long"
MSG_BLOCKS_TOO_LONG: Final = "msg_blocks_too_long"
INVALID_ARGUMENTS: Final = "invalid_arguments"

TEXT_OBJECT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})
VIEW_TYPES: Final = frozenset({"home", "modal"})
SELECTS_WITH_OPTIONS: Final = frozenset({"static_select", "multi_static_select"})


@dataclass(frozen=True)
class Problem:
    """One Block Kit violation plus the Slack error code the API would answer with."""

    error: str
    detail: str

    def __str__(self) -> str:
        return self.detail


def check_message(text: str | None, blocks: Any) -> list[str]:
    """Describe every reason Slack would refuse a message with this text and these blocks."""
    return [problem.detail for problem in find_message_problems(text, blocks)]


def check_view(view: Any) -> list[str]:
    """Describe every reason Slack would refuse this view in views.publish/views.open."""
    return [problem.detail for problem in find_view_problems(view)]


def find_message_problems(text: str | None, blocks: Any) -> list[Problem]:
    """Like check_message, but keeps the Slack error code of each problem."""
    problems: list[Problem] = []
    if text is not None and len(text) > MAX_MESSAGE_TEXT:
        problems.append(Problem(MSG_TOO_LONG, f"text is {len(text)} characters, over 40000"))
    if blocks is None:
        return problems
    checker = _Checker("/blocks", INVALID_BLOCKS)
    checker.check_block_list(blocks, MAX_MESSAGE_BLOCKS)
    problems.extend(checker.problems)
    if isinstance(blocks, list):
        size = len(json.dumps(blocks, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_SERIALIZED_BLOCKS:
            detail = f"blocks serialize to {size} characters, over {MAX_SERIALIZED_BLOCKS}"
            problems.append(Problem(MSG_BLOCKS_TOO_LONG, detail))
    return problems


def find_view_problems(view: Any) -> list[Problem]:
    """Like check_view, but keeps the Slack error code (views answer invalid_arguments)."""
    checker = _Checker("/view/blocks", INVALID_ARGUMENTS)
    if not isinstance(view, dict):
        checker.add("/view", "must provide an object")
        return checker.problems
    if view.get("type") not in VIEW_TYPES:
        checker.add("/view/type", "must be one of home, modal")
    if view.get("type") == "modal":
        checker.check_modal_chrome(view)
    checker.check_string_length(view.get("private_metadata"), MAX_PRIVATE_METADATA, "/view/private_metadata")
    checker.check_string_length(view.get("callback_id"), MAX_CALLBACK_ID, "/view/callback_id")
    checker.check_block_list(view.get("blocks"), MAX_VIEW_BLOCKS)
    return checker.problems


class _Checker:
    """Walks a block list and collects problems with JSON pointers into the payload."""

    def __init__(self, root: str, error: str) -> None:
        self.root = root
        self.error = error
        self.problems: list[Problem] = []
        self._markdown_total = 0

    def add(self, pointer: str, message: str) -> None:
        self.problems.append(Problem(self.error, f"{message} [json-pointer:{pointer}]"))

    def check_string_length(self, value: Any, limit: int, pointer: str) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.add(pointer, "must be a string")
        elif len(value) > limit:
            self.add(pointer, f"must be less than {limit + 1} characters")

    def check_modal_chrome(self, view: dict[str, Any]) -> None:
        if view.get("title") is None:
            self.add("/view/title", "missing required field: title")
        self.check_text_object(view.get("title"), MAX_VIEW_TITLE, "/view/title", plain_only=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                self.check_text_object(view[key], MAX_VIEW_BUTTON, f"/view/{key}", plain_only=True)

    def check_block_list(self, blocks: Any, max_blocks: int) -> None:
        if blocks is None:
            return
        if not isinstance(blocks, list):
            self.add(self.root, "must provide an array")
            return
        if len(blocks) > max_blocks:
            self.add(self.root, f"no more than {max_blocks} items allowed")
        seen_block_ids: set[str] = set()
        for index, block in enumerate(blocks):
            pointer = f"{self.root}/{index}"
            if self._check_block_shape(block, pointer):
                self._check_block_id(block, pointer, seen_block_ids)
                self._check_block(block, pointer)
        if self._markdown_total > MAX_MARKDOWN_TOTAL:
            self.add(self.root, f"markdown blocks total more than {MAX_MARKDOWN_TOTAL} characters")

    def _check_block_shape(self, block: Any, pointer: str) -> bool:
        if not isinstance(block, dict):
            self.add(pointer, "must provide an object")
            return False
        if not isinstance(block.get("type"), str):
            self.add(pointer, "missing required field: type")
            return False
        return True

    def _check_block_id(self, block: dict[str, Any], pointer: str, seen: set[str]) -> None:
        block_id = block.get("block_id")
        if block_id is None:
            return
        self.check_string_length(block_id, MAX_BLOCK_ID, f"{pointer}/block_id")
        if isinstance(block_id, str):
            if block_id in seen:
                self.add(f"{pointer}/block_id", f"duplicate block_id {block_id!r}")
            seen.add(block_id)

    def _check_block(self, block: dict[str, Any], pointer: str) -> None:
        check = {
            "section": self._check_section,
            "header": self._check_header,
            "context": self._check_context,
            "actions": self._check_actions,
            "markdown": self._check_markdown,
            "image": self._check_image_block,
            "input": self._check_input,
        }.get(block["type"])
        if check is not None:
            check(block, pointer)

    def _check_section(self, block: dict[str, Any], pointer: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.add(pointer, "must provide either text or fields")
        if text is not None:
            self.check_text_object(text, MAX_SECTION_TEXT, f"{pointer}/text")
        if fields is not None:
            self._check_fields(fields, f"{pointer}/fields")
        if block.get("accessory") is not None:
            self.check_element(block["accessory"], f"{pointer}/accessory")

    def _check_fields(self, fields: Any, pointer: str) -> None:
        if not isinstance(fields, list):
            self.add(pointer, "must provide an array")
            return
        if len(fields) > MAX_SECTION_FIELDS:
            self.add(pointer, f"no more than {MAX_SECTION_FIELDS} items allowed")
        for index, field in enumerate(fields):
            self.check_text_object(field, MAX_SECTION_FIELD_TEXT, f"{pointer}/{index}")

    def _required_plain_text(self, owner: dict[str, Any], field: str, limit: int, pointer: str) -> None:
        """`owner[field]` must be there, and be a plain_text object of at most `limit` characters."""
        if owner.get(field) is None:
            self.add(pointer, f"missing required field: {field}")
        else:
            self.check_text_object(owner[field], limit, f"{pointer}/{field}", plain_only=True)

    def _check_header(self, block: dict[str, Any], pointer: str) -> None:
        self._required_plain_text(block, "text", MAX_HEADER_TEXT, pointer)

    def _check_context(self, block: dict[str, Any], pointer: str) -> None:
        elements = self._element_list(block, pointer, MAX_CONTEXT_ELEMENTS)
        for index, element in enumerate(elements):
            element_pointer = f"{pointer}/elements/{index}"
            if isinstance(element, dict) and element.get("type") == "image":
                self._check_image(element, element_pointer)
            else:
                # No per-element text limit: slack_sdk's ContextBlock validates only the count.
                self.check_text_object(element, None, element_pointer)

    def _check_actions(self, block: dict[str, Any], pointer: str) -> None:
        elements = self._element_list(block, pointer, MAX_ACTIONS_ELEMENTS)
        seen_action_ids: set[str] = set()
        for index, element in enumerate(elements):
            element_pointer = f"{pointer}/elements/{index}"
            self.check_element(element, element_pointer)
            action_id = element.get("action_id") if isinstance(element, dict) else None
            if isinstance(action_id, str):
                if action_id in seen_action_ids:
                    self.add(f"{element_pointer}/action_id", f"duplicate action_id {action_id!r}")
                seen_action_ids.add(action_id)

    def _element_list(self, block: dict[str, Any], pointer: str, limit: int) -> list[Any]:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.add(f"{pointer}/elements", "must provide a non-empty array")
            return []
        if len(elements) > limit:
            self.add(f"{pointer}/elements", f"no more than {limit} items allowed")
        return elements

    def _check_markdown(self, block: dict[str, Any], pointer: str) -> None:
        text = block.get("text")
        if not isinstance(text, str):
            self.add(f"{pointer}/text", "must be a string")
            return
        self._markdown_total += len(text)
        self.check_string_length(text, MAX_MARKDOWN_TEXT, f"{pointer}/text")

    def _check_image_block(self, block: dict[str, Any], pointer: str) -> None:
        self._check_image(block, pointer)
        if block.get("title") is not None:
            self.check_text_object(block["title"], MAX_IMAGE_TITLE, f"{pointer}/title", plain_only=True)

    def _check_image(self, image: dict[str, Any], pointer: str) -> None:
        if image.get("image_url") is None and image.get("slack_file") is None:
            self.add(pointer, "must provide either image_url or slack_file")
        self.check_string_length(image.get("image_url"), MAX_URL, f"{pointer}/image_url")
        if not isinstance(image.get("alt_text"), str):
            self.add(f"{pointer}/alt_text", "missing required field: alt_text")
        self.check_string_length(image.get("alt_text"), MAX_IMAGE_ALT_TEXT, f"{pointer}/alt_text")

    def _check_input(self, block: dict[str, Any], pointer: str) -> None:
        self._required_plain_text(block, "label", MAX_INPUT_LABEL, pointer)
        if block.get("hint") is not None:
            self.check_text_object(block["hint"], MAX_INPUT_HINT, f"{pointer}/hint", plain_only=True)
        if block.get("element") is None:
            self.add(pointer, "missing required field: element")
        else:
            self.check_element(block["element"], f"{pointer}/element")

    def check_element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.add(pointer, "must provide an object with a type")
            return
        self.check_string_length(element.get("action_id"), MAX_ACTION_ID, f"{pointer}/action_id")
        if element.get("confirm") is not None:
            self._check_confirm(element["confirm"], f"{pointer}/confirm")
        if element["type"] == "button":
            self._check_button(element, pointer)
        elif element["type"] == "image":
            self._check_image(element, pointer)
        elif element["type"] == "overflow":
            self._check_options(element.get("options"), MAX_OVERFLOW_OPTIONS, f"{pointer}/options")
        elif element["type"] in SELECTS_WITH_OPTIONS and element.get("option_groups") is None:
            self._check_options(element.get("options"), MAX_SELECT_OPTIONS, f"{pointer}/options")

    def _check_button(self, button: dict[str, Any], pointer: str) -> None:
        self._required_plain_text(button, "text", MAX_BUTTON_TEXT, pointer)
        self.check_string_length(button.get("value"), MAX_BUTTON_VALUE, f"{pointer}/value")
        self.check_string_length(button.get("url"), MAX_URL, f"{pointer}/url")
        if button.get("style") not in (None, "primary", "danger"):
            self.add(f"{pointer}/style", "must be one of primary, danger")

    def _check_options(self, options: Any, limit: int, pointer: str) -> None:
        if not isinstance(options, list) or not options:
            self.add(pointer, "must provide a non-empty array")
            return
        if len(options) > limit:
            self.add(pointer, f"no more than {limit} items allowed")
        for index, option in enumerate(options):
            option_pointer = f"{pointer}/{index}"
            if not isinstance(option, dict):
                self.add(option_pointer, "must provide an object")
                continue
            self.check_text_object(option.get("text"), MAX_OPTION_TEXT, f"{option_pointer}/text")
            self.check_string_length(option.get("value"), MAX_OPTION_VALUE, f"{option_pointer}/value")

    def _check_confirm(self, confirm: Any, pointer: str) -> None:
        if not isinstance(confirm, dict):
            self.add(pointer, "must provide an object")
            return
        limits = {
            "title": MAX_CONFIRM_TITLE,
            "text": MAX_CONFIRM_TEXT,
            "confirm": MAX_CONFIRM_BUTTON,
            "deny": MAX_CONFIRM_BUTTON,
        }
        for key, limit in limits.items():
            if confirm.get(key) is not None:
                self.check_text_object(confirm[key], limit, f"{pointer}/{key}")

    def check_text_object(
        self, value: Any, limit: int | None, pointer: str, *, plain_only: bool = False
    ) -> None:
        if not isinstance(value, dict):
            self.add(pointer, "must provide a text object")
            return
        allowed = {"plain_text"} if plain_only else TEXT_OBJECT_TYPES
        if value.get("type") not in allowed:
            self.add(f"{pointer}/type", f"must be one of {', '.join(sorted(allowed))}")
        text = value.get("text")
        if not isinstance(text, str) or not text:
            self.add(f"{pointer}/text", "must be more than 0 characters")
        elif limit is not None and len(text) > limit:
            self.add(f"{pointer}/text", f"must be less than {limit + 1} characters")


def flatten(blocks: Any) -> str:
    """Render blocks as readable plain text, one line per visual line, for asserts and terminals.

    Headers, section text and fields, context elements, rich text and markdown come out as
    text; buttons as ``[Label]``; dividers as ``---``. Unknown or malformed parts are skipped.
    """
    if not isinstance(blocks, list):
        return ""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, dict):
            lines.extend(_block_lines(block))
    return "\n".join(line for line in lines if line)


def _block_lines(block: dict[str, Any]) -> Iterator[str]:
    kind = block.get("type")
    if kind in ("header", "section"):
        yield _text_of(block.get("text"))
    if kind == "section":
        yield from (_text_of(field) for field in _as_list(block.get("fields")))
        yield _element_text(block.get("accessory"))
    elif kind == "context":
        yield " · ".join(filter(None, (_element_text(e) for e in _as_list(block.get("elements")))))
    elif kind == "actions":
        yield " ".join(filter(None, (_element_text(e) for e in _as_list(block.get("elements")))))
    elif kind == "divider":
        yield "---"
    elif kind == "markdown":
        yield str(block.get("text", ""))
    elif kind == "image":
        yield f"[image: {block.get('alt_text', '')}]"
    elif kind == "input":
        yield _text_of(block.get("label"))
    elif kind == "rich_text":
        yield from _rich_text_lines(block.get("elements"))


def _element_text(element: Any) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind in TEXT_OBJECT_TYPES:
        return _text_of(element)
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind in ("button", "workflow_button"):
        return f"[{_text_of(element.get('text'))}]"
    if "placeholder" in element:
        return f"[{_text_of(element.get('placeholder'))} ▾]"
    if kind == "overflow":
        return "[…]"
    return ""


def _text_of(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    return ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _rich_text_lines(elements: Any) -> Iterator[str]:
    for element in _as_list(elements):
        if not isinstance(element, dict):
            continue
        kind = element.get("type")
        if kind == "rich_text_list":
            for item in _as_list(element.get("elements")):
                yield "• " + _rich_inline(item)
        elif kind == "rich_text_preformatted":
            yield "```" + _rich_inline(element) + "```"
        elif kind == "rich_text_quote":
            yield "> " + _rich_inline(element)
        else:
            yield _rich_inline(element)


def _rich_inline(container: Any) -> str:
    if not isinstance(container, dict):
        return ""
    return "".join(_rich_part(part) for part in _as_list(container.get("elements")))


def _rich_part(part: Any) -> str:
    if not isinstance(part, dict):
        return ""
    kind = part.get("type")
    rendered = {
        "text": lambda: str(part.get("text", "")),
        "link": lambda: str(part.get("text") or part.get("url", "")),
        "user": lambda: f"<@{part.get('user_id', '')}>",
        "usergroup": lambda: f"<!subteam^{part.get('usergroup_id', '')}>",
        "channel": lambda: f"<#{part.get('channel_id', '')}>",
        "emoji": lambda: f":{part.get('name', '')}:",
        "broadcast": lambda: f"@{part.get('range', '')}",
    }.get(str(kind))
    return rendered() if rendered is not None else ""
