"""Words for numbers in messages, captions and titles: "1 thread", "2 threads", "3rd"."""

from __future__ import annotations


def plural(n: int, word: str, many: str = "") -> str:
    """'1 seed', '2 seeds', '1,000 images' ('many' for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def ordinal(n: int) -> str:
    """'1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
