"""Card and text sprites, drawn once per size, and the frame composition built on them.

Drawing text with Pillow costs tens of microseconds a string; the games need thousands
of frames a second. So every picture element (a card, a card back, a label, a formula
token) is drawn once per pixel size into a read-only ``uint8`` array and cached, and a
frame is composed by copying those arrays into place with numpy slicing.

Sprites are drawn on the colour of the area they are pasted on (opaque rectangles):
pasting is then a plain copy, with no alpha blending per frame.

Everything is drawn with the DejaVu Sans Bold font shipped in ``assets/cards`` and
read through :mod:`importlib.resources`, so frames are identical whatever the working
directory. Cards are drawn at four times their size and reduced, which smooths their
rounded corners and symbols.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from envs.cards.deck import RED_SUITS, SUIT_SYMBOLS, Card

Color = tuple[int, int, int]

FELT: Color = (53, 101, 77)
"""The green table of the card games (gym-cards' ``#35654d``)."""
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
CARD_RED: Color = (200, 24, 36)
CARD_BLACK: Color = (20, 20, 20)
CARD_EDGE: Color = (90, 90, 90)
BACK_BLUE: Color = (32, 64, 150)
BACK_LINE: Color = (120, 150, 220)

FONT_FILE = "DejaVuSans-Bold.ttf"
_SUPERSAMPLE = 4
CARD_ASPECT = 1.4
"""Card height over width (a poker card is 88.9 x 63.5 mm)."""


@functools.lru_cache(maxsize=1)
def _font_bytes() -> bytes:
    return (resources.files("assets") / "cards" / FONT_FILE).read_bytes()


@functools.lru_cache(maxsize=256)
def font(px: int) -> ImageFont.FreeTypeFont:
    """The shipped font at ``px`` pixels per em."""
    return ImageFont.truetype(io.BytesIO(_font_bytes()), max(1, int(px)))


def text_width(text: str, px: int) -> int:
    """Width in pixels of ``text`` drawn by :func:`text_sprite` at ``px``."""
    return max(1, int(np.ceil(font(px).getlength(text))))


def line_height(px: int) -> int:
    """Height of every :func:`text_sprite` at ``px``: ascent plus descent."""
    ascent, descent = font(px).getmetrics()
    return ascent + descent


@functools.lru_cache(maxsize=4096)
def text_sprite(text: str, px: int, color: Color, background: Color) -> np.ndarray:
    """``text`` at ``px`` on ``background``: a read-only (line_height, width, 3) array.

    All sprites of one ``px`` share their height and baseline, so tokens pasted side
    by side at the same ``y`` line up.
    """
    image = Image.new("RGB", (text_width(text, px), line_height(px)), background)
    ImageDraw.Draw(image).text((0, 0), text, fill=color, font=font(px), anchor="la")
    return _frozen(np.asarray(image))


@functools.lru_cache(maxsize=1024)
def card_sprite(card: Card | None, width: int, height: int, background: Color) -> np.ndarray:
    """A card face (or its back when ``card`` is None): read-only (height, width, 3).

    The face shows the rank large in the top-left corner with the suit symbol under
    it, so the rank stays readable when cards overlap and in 64-pixel frames. A 10
    shows "10" (gym-cards' Blackjack never drew one).
    """
    w, h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    image = Image.new("RGB", (w, h), background)
    radius, edge = max(_SUPERSAMPLE, int(0.12 * w)), max(_SUPERSAMPLE, int(0.04 * w))
    ImageDraw.Draw(image).rounded_rectangle(
        (0, 0, w - 1, h - 1), radius, fill=WHITE, outline=CARD_EDGE, width=edge
    )
    if card is None:
        _draw_back(image, radius, edge)
    else:
        _draw_face(image, card, edge)
    small = image.resize((width, height), Image.LANCZOS)
    return _frozen(np.asarray(small))


def _draw_back(image: Image.Image, radius: int, edge: int) -> None:
    """A blue lattice inside the white border."""
    w, h = image.size
    pattern = Image.new("RGB", (w, h), BACK_BLUE)
    draw = ImageDraw.Draw(pattern)
    step, line = max(2 * _SUPERSAMPLE, int(0.16 * w)), max(_SUPERSAMPLE, edge // 2)
    for offset in range(-h, w + h, step):
        draw.line((offset, 0, offset + h, h), fill=BACK_LINE, width=line)
        draw.line((offset + h, 0, offset, h), fill=BACK_LINE, width=line)
    inset = min(max(2 * edge, int(0.1 * w)), w // 2 - 1)  # tiny cards: a sliver of border
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (inset, inset, w - 1 - inset, h - 1 - inset), radius // 2, fill=255
    )
    image.paste(pattern, (0, 0), mask)


def _draw_face(image: Image.Image, card: Card, edge: int) -> None:
    """Rank and suit symbol in the top-left corner, as large as stays legible."""
    w, h = image.size
    ink = CARD_RED if card.suit in RED_SUITS else CARD_BLACK
    pad = max(edge + _SUPERSAMPLE, int(0.08 * w))
    # As tall as fits; squeezed horizontally when "10" is wider than the card allows.
    rank = _ink_image(card.rank_name, int(0.46 * h), ink)
    index_width = max(1, w - 2 * pad)
    if rank.width > index_width:
        rank = rank.resize((index_width, rank.height), Image.LANCZOS)
    image.paste(rank, (pad, pad), rank)
    suit = _ink_image(SUIT_SYMBOLS[card.suit], int(0.3 * h), ink)
    image.paste(suit, (pad, pad + rank.height + int(0.05 * h)), suit)


def _ink_image(text: str, px: int, color: Color) -> Image.Image:
    """``text`` cropped to its ink, as RGBA with the glyph coverage in alpha."""
    glyph_font = font(px)
    left, top, right, bottom = glyph_font.getbbox(text, anchor="ls")
    image = Image.new("RGBA", (right - left, bottom - top), (*color, 0))
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=glyph_font, anchor="ls")
    image.putalpha(mask)
    return image


def blank(size: int, color: Color) -> np.ndarray:
    """A fresh ``size`` x ``size`` frame of one colour."""
    return _solid(size, color).copy()  # a copy is ~20x faster than filling with a colour


@functools.lru_cache(maxsize=64)
def _solid(size: int, color: Color) -> np.ndarray:
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = color
    return _frozen(frame)


def paste(frame: np.ndarray, sprite: np.ndarray, x: int, y: int) -> None:
    """Copies ``sprite`` into ``frame`` with its top-left corner at (x, y), clipped."""
    height, width = frame.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + sprite.shape[1], width), min(y + sprite.shape[0], height)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = sprite[y0 - y : y1 - y, x0 - x : x1 - x]


def card_size_for(height: int) -> tuple[int, int]:
    """(width, height) of a card ``height`` pixels tall."""
    return max(4, round(height / CARD_ASPECT)), max(6, height)


def card_size_fitting(width: float, height: float) -> tuple[int, int]:
    """The largest card (width, height) within ``width`` x ``height`` pixels."""
    return card_size_for(int(min(height, width * CARD_ASPECT)))


def flow(widths: Sequence[int], max_width: int, gap: int) -> list[tuple[int, int]]:
    """Wraps items of ``widths`` into lines: each item's (column x, line index)."""
    placed: list[tuple[int, int]] = []
    x, line = 0, 0
    for width in widths:
        if x > 0 and x + width > max_width:
            x, line = 0, line + 1
        placed.append((x, line))
        x += width + gap
    return placed


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    array.flags.writeable = False  # cached and shared: no caller may draw on it
    return array
