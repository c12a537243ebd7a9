# Compiling C to eBPF with clang-19 at build time, and extracting .text as raw bytecode for
# programs the interpreter runs before the ELF loader exists.
find_program(BPFVM_CLANG_BPF NAMES clang-19 DOC "clang that targets BPF (clang-19)")
find_program(BPFVM_LLVM_OBJDUMP NAMES llvm-objdump-19 DOC "llvm-objdump-19, the disassembler oracle")
find_program(BPFVM_LLVM_OBJCOPY NAMES llvm-objcopy-19 DOC "llvm-objcopy-19, to extract .text")

# bpfvm_bpf_program(OUT_VAR SOURCE NAME [FLAGS ...]) compiles SOURCE to NAME.o and NAME.bin
# (the .text section's bytes) in the current binary dir; OUT_VAR receives both paths.
function(bpfvm_bpf_program out_var source name)
  if(NOT BPFVM_CLANG_BPF OR NOT BPFVM_LLVM_OBJCOPY)
    message(FATAL_ERROR "clang-19 and llvm-objcopy-19 are needed to build BPF programs (apt-get install clang-19 llvm-19)")
  endif()
  set(obj "${CMAKE_CURRENT_BINARY_DIR}/${name}.o")
  set(bin "${CMAKE_CURRENT_BINARY_DIR}/${name}.bin")
  add_custom_command(
    OUTPUT "${obj}" "${bin}"
    COMMAND "${BPFVM_CLANG_BPF}" -target bpf -O2 -fno-jump-tables ${ARGN} -MD -MF "${obj}.d" -c "${source}" -o "${obj}"
    COMMAND "${BPFVM_LLVM_OBJCOPY}" -O binary --only-section=.text "${obj}" "${bin}"
    DEPENDS "${source}"
    DEPFILE "${obj}.d"
    COMMENT "clang-19 -target bpf ${name}"
    VERBATIM)
  set(${out_var} "${obj};${bin}" PARENT_SCOPE)
endfunction()
