#!/usr/bin/env python3
"""Writes the elf_deps fuzzer's seeds: small hand-built ELF files with a
PT_INTERP, a PT_LOAD covering a string table and a PT_DYNAMIC naming two
libraries, a DT_RUNPATH and a DT_RPATH, in 64-bit little endian and 32-bit
big endian; and a script with an #! line. Usage: make_elf_seeds.py DIR"""
import os, struct, sys


def elf(is64, le):
    e = "<" if le else ">"
    strtab = b"\0liba.so\0libb.so.1\0$ORIGIN/../lib:/opt\0/old\0"
    interp = b"/lib64/ld-linux-x86-64.so.2\0"
    ehsize, phsize = (64, 56) if is64 else (52, 32)
    phoff = ehsize
    nph = 3
    interp_off = phoff + nph * phsize
    str_off = interp_off + len(interp)
    dyn_off = str_off + len(strtab)
    dyn = [(1, 1), (1, 9), (29, 19), (15, 37), (5, 0x1000 + str_off), (10, len(strtab)), (0, 0)]
    word = "Q" if is64 else "I"
    dyn_bytes = b"".join(struct.pack(e + ("q" if is64 else "i") + word, t, v) for t, v in dyn)
    total = dyn_off + len(dyn_bytes)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if le else 2, 1]) + b"\0" * 9
    if is64:
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, 62, 1, 0, phoff, 0, 0, ehsize, phsize, nph, 64, 0, 0)
        ph = lambda t, off, vaddr, sz: struct.pack(e + "IIQQQQQQ", t, 4, off, vaddr, vaddr, sz, sz, 8)
    else:
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, 8, 1, 0, phoff, 0, 0, ehsize, phsize, nph, 40, 0, 0)
        ph = lambda t, off, vaddr, sz: struct.pack(e + "IIIIIIII", t, off, vaddr, vaddr, sz, sz, 4, 4)
    phs = ph(3, interp_off, 0x1000 + interp_off, len(interp)) + ph(1, 0, 0x1000, total) + \
        ph(2, dyn_off, 0x1000 + dyn_off, len(dyn_bytes))
    return hdr + phs + interp + strtab + dyn_bytes


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in [("dyn64le", elf(True, True)), ("dyn32be", elf(False, False)),
                       ("script", b"#!/usr/bin/env -S python3 -u\nprint(1)\n")]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
