"""Text: verse-aligned Bibles and per-language word tokenisation."""
