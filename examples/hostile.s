# An unverified program that tries to read host memory through a forged pointer. The checked
# interpreter stops it with a trap naming the pc and the address.
        lddw %r1, 0x7fffdeadbeef
        ldxdw %r0, [%r1]
        exit
