"""Runs the kernel's AVX-512 engine in an emulated CPU and checks it against SHA-256.

The development machines and CI expose no AVX-512, so `cargo test` cannot run that path there.
This script runs the compiled `avx512_finish`, `avx512_compress` and `avx512_finish_fixed`
functions of a release
binary in BochsCPU (which implements AVX-512) on random lane states and blocks, with and
without skipped rounds, and compares every lane with a plain Python SHA-256 compression.

    pip install bochscpu-python
    cargo test --release -p bitcoin-core --no-run     # or any release binary using the kernel
    python3 bitcoin-core/tests/avx512_emulation.py target/release/deps/bitcoin_core-<hash> [CASES]

The wheel wants glibc >= 2.38; on older systems preload a shim defining `__isoc23_strtoull`
and `__isoc23_sscanf` as `strtoull` and `vsscanf`. `NEGATIVE=1` feeds a wrong skip count, to see
the check fail. The functions' argument registers follow the Rust ABI of rustc 1.95 (checked
by disassembly): finish(rdi=&Entry, rsi=&Block, edx=threshold, rcx=&out) -> eax mask,
compress(rdi=&mut State (return slot), rsi=&Entry, rdx=&Block), finish_fixed(rdi=&Entry,
rsi=&Schedule, edx=threshold, rcx=&out) -> eax mask; Entry = (init, start, skip, uniform).
"""
import os, random, struct, subprocess, sys
import bochscpu, bochscpu.cpu, bochscpu.memory

BIN = sys.argv[1]
CASES = int(sys.argv[2]) if len(sys.argv) > 2 else 40
NEGATIVE = os.environ.get("NEGATIVE") == "1"

def symbol(name):
    out = subprocess.run(["nm", "-C", BIN], capture_output=True, text=True, check=True).stdout
    found = [l.split()[0] for l in out.splitlines() if l.endswith("kernel::simd::" + name)]
    assert len(found) == 1, f"{name}: {found} (is the function inlined?)"
    return int(found[0], 16)

FINISH = symbol("avx512_finish")
COMPRESS = symbol("avx512_compress")
FINISH_FIXED = symbol("avx512_finish_fixed")
PAGE = bochscpu.memory.page_size()
M = 0xffffffff
K = [
0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,
0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,
0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,
0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,
0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,
0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,
0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2]
def rotr(x, n): return ((x >> n) | (x << (32 - n))) & M
def rounds(state, w16, first, last):
    w = list(w16)
    for t in range(16, 64):
        s0 = rotr(w[t-15], 7) ^ rotr(w[t-15], 18) ^ (w[t-15] >> 3)
        s1 = rotr(w[t-2], 17) ^ rotr(w[t-2], 19) ^ (w[t-2] >> 10)
        w.append((w[t-16] + s0 + w[t-7] + s1) & M)
    a, b, c, d, e, f, g, h = state
    for t in range(first, last):
        t1 = (h + (rotr(e,6) ^ rotr(e,11) ^ rotr(e,25)) + ((e & f) ^ (~e & g & M)) + K[t] + w[t]) & M
        t2 = ((rotr(a,2) ^ rotr(a,13) ^ rotr(a,22)) + ((a & b) ^ (a & c) ^ (b & c))) & M
        a, b, c, d, e, f, g, h = (t1 + t2) & M, a, b, c, (d + t1) & M, e, f, g
    return [a, b, c, d, e, f, g, h]
def compress(state, w16):
    out = rounds(state, w16, 0, 64)
    return [(x + y) & M for x, y in zip(out, state)]

# ---- memory: the binary's first two LOAD segments at their link addresses
data = open(BIN, 'rb').read()
pt = bochscpu.memory.PageMapLevel4Table()
gpa_next = [0x100000 * 16]
hvas = []
def map_page(gva, content=b'', rw=1):
    hva = bochscpu.memory.allocate_host_page(); hvas.append(hva)
    gpa = gpa_next[0]; gpa_next[0] += PAGE
    bochscpu.memory.page_insert(gpa, hva)
    pt.insert(gva, gpa, rw)
    return gva
def load_segments(elf):
    """(file offset, virtual address, file size) of every PT_LOAD segment of an ELF64 file."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    out = []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type == 1 and p_filesz:
            out.append((p_offset, p_vaddr, p_filesz))
    return out
segs = load_segments(data)
pages = {}
for off, va, size in segs:
    for p in range(va & ~0xfff, va + size, PAGE):
        pages[p] = True
for p in sorted(pages):
    map_page(p, rw=1)
DATA, STACK, RET = 0x10000000, 0x20000000, 0x30000000
for i in range(4): map_page(DATA + i * PAGE)
for i in range(4): map_page(STACK + i * PAGE)
map_page(RET)
pml4 = 0x1000
for hva, gpa in pt.commit(pml4):
    bochscpu.memory.page_insert(gpa, hva)
def write(va, b): assert bochscpu.memory.virt_write(pml4, va, list(bytes(b)))
def read(va, n): return bytes(bochscpu.memory.virt_read(pml4, va, n))
for off, va, size in segs:
    write(va, data[off:off + size])
write(RET, b'\xf4' * 16)

def call(fn, regs):
    sess = bochscpu.Session()
    def missing(gpa): raise Exception(f"missing page {gpa:#x}")
    sess.missing_page_handler = missing
    st = bochscpu.State()
    bochscpu.cpu.set_long_mode(st)
    st.cr3 = pml4
    st.cr4 = st.cr4 | (1 << 9) | (1 << 10) | (1 << 18)
    st.xcr0 = 0xe7
    rsp = STACK + 3 * PAGE
    write(rsp, struct.pack('<Q', RET))
    st.rsp = rsp
    st.rip = fn
    for name, value in regs.items(): setattr(st, name, value)
    cs = bochscpu.Segment(); cs.present = True; cs.selector = 0x33; cs.base = 0; cs.limit = 0xffffffff; cs.attr = 0x22fb
    st.cs = cs
    ds = bochscpu.Segment(); ds.present = True; ds.selector = 0x2b; ds.base = 0; ds.limit = 0xffffffff; ds.attr = 0xcf3
    st.ds = ds; st.ss = ds; st.es = ds; st.fs = ds; st.gs = ds
    sess.cpu.state = st
    info = {'exc': None}
    def after(sess_, cpu_id, insn):
        if sess_.cpu.rip == RET: sess_.stop()
    def exc(sess_, cpu_id, vector, code):
        info['exc'] = (vector, code); sess_.stop()
    hook = bochscpu.Hook(); hook.after_execution = after; hook.exception = exc
    sess.run([hook])
    if info['exc']: raise Exception(f"exception {info['exc']} at rip {sess.cpu.rip:#x}")
    assert sess.cpu.rip == RET, hex(sess.cpu.rip)
    return sess.cpu.state.rax

ENTRY, INIT, START, BLOCK, OUT, SRET, SCHED = DATA, DATA + 0x200, DATA + 0x400, DATA + 0x800, DATA + 0xc00, DATA + 0x1000, DATA + 0x1400
rng = random.Random(1)
fails = 0
for case in range(CASES):
    lanes = 16
    uniform = case % 2 == 0
    if uniform:
        s = [rng.getrandbits(32) for _ in range(8)]; init = [s] * lanes
    else:
        init = [[rng.getrandbits(32) for _ in range(8)] for _ in range(lanes)]
    blocks = [[rng.getrandbits(32) for _ in range(16)] for _ in range(lanes)]
    skip = rng.randrange(16) if uniform else 0
    if uniform:
        # the skipped words must be equal in every lane
        for l in range(lanes): blocks[l][:skip] = blocks[0][:skip]
    start = [rounds(init[l], blocks[l], 0, skip) for l in range(lanes)]
    soa = lambda rows, n: b''.join(struct.pack('<16I', *[rows[l][i] for l in range(lanes)]) for i in range(n))
    write(INIT, soa(init, 8)); write(START, soa(start, 8)); write(BLOCK, soa(blocks, 16))
    write(ENTRY, struct.pack('<QQQQ', INIT, START, skip + (1 if NEGATIVE and skip < 15 else 0), 1 if uniform else 0))
    expected = [compress(init[l], blocks[l]) for l in range(lanes)]
    threshold = expected[rng.randrange(lanes)][0]
    mask = call(FINISH, {'rdi': ENTRY, 'rsi': BLOCK, 'rdx': threshold, 'rcx': OUT}) & 0xffff
    out = struct.unpack('<32I', read(OUT, 128))
    got = [(out[l], out[16 + l]) for l in range(lanes)]
    want = [(expected[l][0], expected[l][1]) for l in range(lanes)]
    want_mask = sum(1 << l for l in range(lanes) if expected[l][0] <= threshold)
    ok = got == want and mask == want_mask
    # compress: sret in rdi, entry in rsi, block in rdx
    call(COMPRESS, {'rdi': SRET, 'rsi': ENTRY, 'rdx': BLOCK})
    outs = struct.unpack('<128I', read(SRET, 512))
    got_state = [[outs[i * 16 + l] for i in range(8)] for l in range(lanes)]
    ok2 = got_state == expected
    # finish_fixed: one block shared by every lane, its schedule precomputed, from round 0
    fixed = blocks[0]
    w = list(fixed)
    for t in range(16, 64):
        s0 = rotr(w[t-15], 7) ^ rotr(w[t-15], 18) ^ (w[t-15] >> 3)
        s1 = rotr(w[t-2], 17) ^ rotr(w[t-2], 19) ^ (w[t-2] >> 10)
        w.append((w[t-16] + s0 + w[t-7] + s1) & M)
    write(SCHED, struct.pack('<64I', *[(K[t] + w[t] + (1 if NEGATIVE else 0)) & M for t in range(64)]))
    write(ENTRY, struct.pack('<QQQQ', INIT, INIT, 0, 1 if uniform else 0))
    expected3 = [compress(init[l], fixed) for l in range(lanes)]
    mask3 = call(FINISH_FIXED, {'rdi': ENTRY, 'rsi': SCHED, 'rdx': threshold, 'rcx': OUT}) & 0xffff
    out3 = struct.unpack('<32I', read(OUT, 128))
    ok3 = [(out3[l], out3[16 + l]) for l in range(lanes)] == [(e[0], e[1]) for e in expected3] \
        and mask3 == sum(1 << l for l in range(lanes) if expected3[l][0] <= threshold)
    print(f"case {case}: uniform={uniform} skip={skip} finish={'ok' if ok else 'FAIL'} "
          f"compress={'ok' if ok2 else 'FAIL'} finish_fixed={'ok' if ok3 else 'FAIL'}")
    fails += (not ok) + (not ok2) + (not ok3)
print("FAILURES", fails)
