/* Wine 8 (Debian 12) has no bcryptprimitives.dll, whose ProcessPrng Rust's std uses for
 * random bytes since Rust 1.78; Wine 9 has it. This stand-in gives the same bytes source
 * Windows' ProcessPrng draws from, through RtlGenRandom (advapi32's SystemFunction036). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, n)) {
            return FALSE;
        }
        data += n;
        length -= n;
    }
    return TRUE;
}
