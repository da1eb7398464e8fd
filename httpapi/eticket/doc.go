// Package eticket renders a ticket's signed code for people: a QR code as a
// PNG (PNG, Version) and an e-ticket PDF with one page per ticket (PDF). It
// is pure rendering: it takes the code as text and never parses, verifies
// or makes one, and it imports nothing of the engine. The codes are signed
// elsewhere; a door scanner reads the QR back to the same text.
//
// Invariants:
//   - The QR holds exactly the code's text: alphanumeric mode when every
//     character allows it (0-9, A-Z, space and $%*+-./:, what the upper-case
//     base32/base45 codes use), byte mode otherwise; error correction M;
//     a quiet zone of 4 modules; whole pixels per module, so no module is
//     blurred by scaling.
//   - Inputs are bounded (codeLenMax, sizePxMin..sizePxMax, ticketsMax);
//     anything else is an error prefixed "eticket: ", never a panic.
//   - Output is deterministic: the same tickets give the same PNG and PDF
//     bytes (the PDF's dates come from the tickets, not the clock).
//   - A holder's name in any script never breaks the PDF: the embedded Go
//     fonts cover Latin, Greek and Cyrillic; a character they lack (Chinese,
//     Arabic, ...) is printed transliterated to Latin letters (see
//     printable), because an empty box would help no one at the door.
//
// Threading: every function is safe for concurrent use; the fonts are
// parsed once and then only read.
package eticket
