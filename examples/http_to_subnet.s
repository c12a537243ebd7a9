# Accept (return 1) IPv4 TCP packets to port 80 of a host in 192.168.1.0/24, with or without a
# VLAN tag; refuse (return 0) everything else. r1 = packet, r2 = its length.
        mov %r0, 0
        mov %r3, 14                 # L3 offset without a VLAN tag
        jlt %r2, 14, done
        ldxh %r4, [%r1+12]          # EtherType, network order
        be16 %r4
        jne %r4, 0x8100, no_vlan
        mov %r3, 18                 # skip the 802.1Q tag
        jlt %r2, 18, done
        ldxh %r4, [%r1+16]
        be16 %r4
no_vlan:
        jne %r4, 0x0800, done       # IPv4 only
        mov %r5, %r3
        add %r5, 20
        jgt %r5, %r2, done          # room for a minimal IPv4 header
        mov %r6, %r1
        add %r6, %r3                # r6 = IPv4 header
        ldxb %r7, [%r6+9]
        jne %r7, 6, done            # TCP
        ldxw %r7, [%r6+16]          # destination address
        be32 %r7
        and %r7, 0xffffff00
        jne32 %r7, 0xc0a80100, done # 192.168.1.0/24 (32-bit compare: imm is sign-extended in 64-bit ones)
        ldxb %r8, [%r6]
        and %r8, 0x0f
        lsh %r8, 2                  # IHL in bytes
        add %r5, %r8
        add %r5, -20
        add %r5, 4
        jgt %r5, %r2, done          # room for the TCP ports
        add %r6, %r8
        ldxh %r9, [%r6+2]           # destination port
        be16 %r9
        jne %r9, 80, done
        mov %r0, 1
done:
        exit
