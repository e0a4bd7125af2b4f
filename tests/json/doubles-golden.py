"""Writes doubles-golden.txt: C hex-float literal, then Python's repr (the
form cria_json_append_double must give), for test-json."""
import random
import struct

rng = random.Random(20261123)
values = [0.1, 1.0, -0.0, 0.5, 1e16, 1e15, 1e-4, 1e-5, 1.5e-5, 123456789012345678.0, 1e300,
          5e-324, 1.7976931348623157e308, 2.0 ** 53, 2.0 ** 53 + 2, 3.14159, 100.0, 1e22, 0.3, 2 / 3]
for _ in range(300):
    bits = rng.getrandbits(64)
    v = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if v == v and abs(v) != float("inf"):
        values.append(v)
for _ in range(300):
    values.append(round(rng.uniform(-1e6, 1e6), rng.randint(0, 8)))
with open("doubles-golden.txt", "w") as f:
    for v in values:
        f.write("%s %r\n" % (v.hex(), v))
