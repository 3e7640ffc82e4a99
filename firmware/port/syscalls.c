// The few newlib system hooks the firmware can reach. There is no heap: the
// device library takes all its memory from the arena, and the console goes
// through board_printf (no FILE, no stdio buffers). A heap request therefore
// means a bug (or a newlib path we did not expect), so it stops the run
// loudly instead of silently growing into the arena.
#include <errno.h>
#include <stddef.h>

#include "board.h"
#include "semihost.h"

void* _sbrk(ptrdiff_t increment) {
  (void)increment;
  board_fail(97, "heap allocation requested (_sbrk): the firmware has no heap");
}

void _exit(int code) { sh_exit(code); }

int _kill(int pid, int sig) {
  (void)pid;
  board_printf("FAIL: signal %d raised (abort?)\n", sig);
  sh_exit(96);
}

int _getpid(void) { return 1; }
