# Regenerates house.pdf and locked.pdf (user password "secret"): python3 make_pdfs.py house.pdf locked.pdf
# Needs pypdf (pip install pypdf). The fixtures are committed; tests never run this.
# Writes a minimal one-page PDF with two lines of text, then an encrypted copy.
import sys
from pypdf import PdfReader, PdfWriter
lines = ["The spare house key is under the blue flowerpot.", "Bins go out on Tuesday evenings."]
content = "BT /F1 12 Tf 72 720 Td 14 TL " + " T* ".join(f"({l}) Tj" for l in lines) + " ET"
objs = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
]
out = b"%PDF-1.4\n"
offsets = []
for i, o in enumerate(objs, 1):
    offsets.append(len(out))
    out += f"{i} 0 obj\n{o}\nendobj\n".encode()
xref = len(out)
out += f"xref\n0 {len(objs)+1}\n0000000000 65535 f \n".encode()
for off in offsets:
    out += f"{off:010d} 00000 n \n".encode()
out += f"trailer\n<< /Size {len(objs)+1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
open(sys.argv[1], "wb").write(out)
r = PdfReader(sys.argv[1])
print("text:", r.pages[0].extract_text())
w = PdfWriter(clone_from=r)
w.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
with open(sys.argv[2], "wb") as f:
    w.write(f)
print("encrypted:", PdfReader(sys.argv[2]).is_encrypted)
