#include "bpfvm/vm/files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace bpfvm::vm {

Expected<std::vector<uint8_t>> read_file(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return make_error(path, "is a folder, not a file");
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) {
        return make_error(path, std::string("cannot read: ") + std::strerror(errno));
    }
    std::vector<uint8_t> bytes;
    // (stat's size is a hint: files in /sys report 4096 or 0 whatever they hold)
    bytes.resize(std::max<std::size_t>(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) + 1 : 0, 65536));
    std::size_t used = 0;
    for (;;) {
        const std::size_t got = std::fread(bytes.data() + used, 1, bytes.size() - used, f.get());
        used += got;
        if (used < bytes.size()) {
            if (std::ferror(f.get()) != 0) {
                return make_error(path, std::string("read failed: ") + std::strerror(errno));
            }
            break;  // end of file
        }
        bytes.resize(bytes.size() * 2);
    }
    bytes.resize(used);
    return bytes;
}

}  // namespace bpfvm::vm
