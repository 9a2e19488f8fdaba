"""Data of the card games: the DejaVu Sans Bold font every card, glyph and label is
drawn with (licence in LICENSE-DejaVu.txt). Card art is drawn from this font at the
exact frame size, so no card images ship."""
