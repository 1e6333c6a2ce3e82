# SPDX-License-Identifier: MIT
"""gdb support for libasync: the tasks of a loop and their backtraces.

    info async-tasks [LOOP]      every task not done: id, name, state, what
                                 it waits on, its deadline (loop seconds)
    async-task bt ID|all|loop [OPT]
                                 the backtrace of a suspended task, of each
                                 task, or of the loop's own stack while a
                                 task runs; OPT goes to gdb's backtrace

LOOP is an expression for an async_loop pointer; by default the loop in
the convenience variable $async_loop if set, else the loop running on the
selected thread (the thread-local async__tls_loop, which gdb cannot read
in every program: a static executable without libthread_db).

A suspended task's registers are not in any thread: its context switch
left them in a frame on the task's own stack (src/os/ctx_x86_64_sysv.S) or
in a ucontext_t (the ASYNC_USE_UCONTEXT build). `async-task bt` lets an
unwinder, for the duration of one backtrace, say that the innermost frame
of the selected thread was called from that saved state; a frame filter
hides that one borrowed frame. Nothing is written to the inferior, so it
works the same on a live process and on a core file.

Every structure is read through the debug information, field by field and
by name, so the script follows the library's structures as they change; it
needs libasync built with -g (RelWithDebInfo, the default, or Debug).
Loaded by hand with `source PATH/libasync.py`, or automatically: see the
README's "Debugging" section.
"""

import gdb
import gdb.unwinder

# Lists longer than this are taken for corrupt (a cycle, a stray pointer).
_MAX_TASKS = 1 << 24


class _Error(gdb.GdbError):
    pass


def _command(invoke):
    """Turns an unreadable address met anywhere in a command into a one-line
    error (a core that lacks a mapping, a stray pointer)."""

    def wrapped(self, arg, from_tty):
        try:
            return invoke(self, arg, from_tty)
        except gdb.MemoryError as e:
            raise _Error("libasync: %s" % e)

    return wrapped


def _type(name):
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise _Error(
            "libasync: no type '%s' in the debug information; "
            "is libasync linked in and built with -g?" % name
        )


def _offsetof(typ, path):
    """Byte offset of a member, 'a.b' for a nested one, found by name."""
    off = 0
    for part in path.split("."):
        typ = typ.strip_typedefs()
        for f in typ.fields():
            if f.name == part:
                off += f.bitpos // 8
                typ = f.type
                break
        else:
            raise _Error("libasync: %s has no field '%s'" % (typ, part))
    return off


def _has_field(typ, name):
    return any(f.name == name for f in typ.strip_typedefs().fields())


def _enum_names(name):
    """{value: enumerator} of an enum of the library, {} if absent."""
    try:
        return {f.enumval: f.name for f in gdb.lookup_type(name).fields()}
    except gdb.error:
        return {}


def _ptr(value):
    return int(value.cast(_type("unsigned long")))


def _string(value):
    if _ptr(value) == 0:
        return None
    try:
        return value.string()[:256]
    except (gdb.MemoryError, gdb.error, UnicodeDecodeError):
        return "<unreadable %#x>" % _ptr(value)


# {==== Loops and tasks ====================================================


def _loop(arg):
    """The async_loop * named by arg, else by $async_loop, else the one
    running on the selected thread."""
    loop_ptr = _type("struct async_loop").pointer()
    if arg and arg.strip():
        try:
            loop = gdb.parse_and_eval(arg)
        except gdb.error as e:
            raise _Error("libasync: cannot evaluate '%s': %s" % (arg, e))
    else:
        loop = gdb.convenience_variable("async_loop")
    if loop is not None:
        if loop.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT:
            loop = loop.address
        try:
            loop = loop.cast(loop_ptr)
        except (gdb.error, AttributeError):
            raise _Error("libasync: '%s' is not a loop pointer"
                         % (arg or "$async_loop"))
    else:
        try:
            loop = gdb.parse_and_eval("async__tls_loop")
        except gdb.error as e:
            loop = _loop_from_frames(loop_ptr)
            if loop is None:
                raise _Error(
                    "libasync: cannot read async__tls_loop (%s); name the "
                    "loop: set $async_loop = EXPR" % e
                )
        if _ptr(loop) == 0:
            raise _Error(
                "libasync: no loop runs on this thread; name one: "
                "set $async_loop = EXPR"
            )
    try:
        ok = int(loop["magic"]) == _loop_magic()
    except gdb.MemoryError:
        ok = False
    if not ok:
        raise _Error("libasync: %#x is not a live async_loop" % _ptr(loop))
    return loop


def _loop_from_frames(loop_ptr):
    """Where gdb cannot read thread-local storage (a remote target such as
    qemu's, a static program without libthread_db): the first variable
    'loop' of the library's frames on the selected thread that is one."""
    frame = gdb.newest_frame()
    while frame is not None:
        try:
            loop = frame.read_var("loop")
            if (loop.type.strip_typedefs() == loop_ptr.strip_typedefs()
                    and not loop.is_optimized_out
                    and int(loop["magic"]) == _loop_magic()):
                return loop
        except (ValueError, gdb.error, RuntimeError):
            pass
        frame = frame.older()
    return None


def _loop_magic():
    return _macro("ASYNC__MAGIC_LOOP", 0x4C4F4F50)


def _macro(name, default):
    # Macros are in the debug information only with -g3: the value is also
    # written down here for the usual -g.
    try:
        return int(gdb.parse_and_eval(name))
    except gdb.error:
        return default


def _tasks(loop):
    """The loop's tasks not done, in creation order (loop->tasks)."""
    task_t = _type("struct async__task")
    link = _offsetof(task_t, "fut.objects")
    head = _ptr(loop["tasks"].address)
    node_ptr = _type("struct async__list").pointer()
    node = _ptr(loop["tasks"]["next"])
    seen = 0
    while node != head:
        if node == 0 or seen > _MAX_TASKS:
            raise _Error("libasync: the loop's task list is corrupt")
        yield gdb.Value(node - link).cast(task_t.pointer())
        node = _ptr(gdb.Value(node).cast(node_ptr)["next"])
        seen += 1


def _name(t):
    name = _string(t["name"])
    return name if name is not None else "Task-%d" % int(t["id"])


_STATES = {
    "ASYNC__T_READY": "ready",
    "ASYNC__T_RUNNING": "running",
    "ASYNC__T_SUSPENDED": "waiting",
    "ASYNC__T_DONE": "done",
}


def _state(t):
    names = _enum_names("enum async__tstate")
    raw = names.get(int(t["state"]), "state %d" % int(t["state"]))
    state = _STATES.get(raw, raw.lower())
    if state == "ready" and not int(t["started"]):
        state = "not started"
    return state


def _wait(t):
    what = _string(t["wait_what"])
    if what in ("await", "shield") and _ptr(t["wait_obj"]):
        # The awaited future is in the await's record (future.c).
        try:
            rec = t["wait_obj"].cast(_type("struct await_waiter").pointer())
            f = rec["f"]
            kinds = _enum_names("enum async__fkind")
            if kinds.get(int(f["kind"])) == "ASYNC__KIND_TASK":
                ft = f.cast(_type("struct async__task").pointer())
                what += " %s (%d)" % (_name(ft), int(ft["id"]))
            else:
                what += " future %#x" % _ptr(f)
        except (gdb.error, gdb.MemoryError, _Error):
            pass
    return what


def _deadline(t, now):
    """Seconds on the loop clock of the earliest armed timer of the task:
    its own (sleep, wait with a timeout) or a deadline scope's."""
    best = None
    if int(t["timer"]["armed"]):
        best = (int(t["timer"]["when"]), "")
    s = t["scopes"]
    n = 0
    while _ptr(s) and n < 1024:
        if int(s["timer"]["armed"]):
            when = int(s["timer"]["when"])
            if best is None or when < best[0]:
                best = (when, " (timeout)")
        s = s["outer"]
        n += 1
    if best is None:
        return "-"
    return "%.3f (+%.3f)%s" % (best[0] / 1e9, (best[0] - now) / 1e9, best[1])


class _InfoTasks(gdb.Command):
    """List the tasks of a libasync loop that are not done.
Usage: info async-tasks [LOOP]
LOOP is an expression for an async_loop pointer; by default $async_loop if
set, else the loop running on the selected thread. Columns: id, name, state
(running, waiting, ready, not started; "cancelling" when a cancellation is
pending), what a waiting task waits on, and the deadline of its earliest
armed timer, in seconds of the loop's clock and from now. '*' marks the
running task."""

    def __init__(self):
        super().__init__("info async-tasks", gdb.COMMAND_STACK)

    @_command
    def invoke(self, arg, from_tty):
        loop = _loop(arg)
        now = int(loop["now"])
        current = _ptr(loop["current"])
        rows = []
        for t in _tasks(loop):
            flag = " cancelling" if int(t["cancel_req"]) else ""
            rows.append(
                (
                    "*" if _ptr(t) == current else " ",
                    str(int(t["id"])),
                    _name(t),
                    _state(t) + flag,
                    _wait(t) or "-",
                    _deadline(t, now),
                )
            )
        clock = "virtual" if int(loop["virtual_clock"]) else "monotonic"
        gdb.write(
            "loop %#x: %d tasks, now %.3f s (%s clock)\n"
            % (_ptr(loop), len(rows), now / 1e9, clock)
        )
        head = (" ", "Id", "Name", "State", "Waits on", "Deadline")
        width = [max(len(r[i]) for r in rows + [head]) for i in range(6)]
        for r in [head] + rows:
            cells = [r[i].ljust(width[i]) for i in range(5)] + [r[5]]
            gdb.write(" ".join(cells).rstrip() + "\n")


# }====

# {==== Saved contexts ====================================================

# glibc's x86-64 gregs indices (sys/ucontext.h, the kernel's sigcontext).
_UC_X86_64 = {
    "r8": 0, "r9": 1, "r10": 2, "r11": 3, "r12": 4, "r13": 5, "r14": 6,
    "r15": 7, "rdi": 8, "rsi": 9, "rbp": 10, "rbx": 11, "rdx": 12,
    "rax": 13, "rcx": 14, "rsp": 15, "rip": 16,
}
_CALLEE_SAVED_X86_64 = ("rbx", "rbp", "r12", "r13", "r14", "r15")


def _arch():
    """'x86-64' or 'aarch64': the ones with a saved-context layout here."""
    name = gdb.selected_inferior().architecture().name()
    if name.startswith("i386:x86-64"):
        return "x86-64"
    if name.startswith("aarch64"):
        return "aarch64"
    raise _Error("libasync: task backtraces are not supported on %s" % name)


def _saved_regs(ctx):
    """The registers of the code that called the switch which saved ctx
    (a struct async__ctx): {register name: integer}, with the stack
    pointer under the name 'sp' and the resumption address under 'pc'."""
    arch = _arch()
    if _has_field(ctx.type, "uc"):
        mc = ctx["uc"]["uc_mcontext"]
        if arch == "x86-64":
            regs = {r: int(mc["gregs"][i]) & (1 << 64) - 1
                    for r, i in _UC_X86_64.items()}
            regs["sp"], regs["pc"] = regs.pop("rsp"), regs.pop("rip")
        else:
            # glibc's swapcontext saves a resumption stub of its own as pc
            # and x30, and the caller's return address where the stub
            # finds it, which is glibc's business.
            raise _Error(
                "libasync: task backtraces on AArch64 need the assembly "
                "switch (this library was built with ASYNC_USE_UCONTEXT)"
            )
        return regs
    # ctx.sp points at the frame async__ctx_swap stored; ctx.c describes it.
    frame_t = _type("struct async__ctx_frame")
    sp = _ptr(ctx["sp"])
    f = gdb.Value(sp).cast(frame_t.pointer()).dereference()
    if arch == "x86-64":
        regs = {r: _ptr(f[r]) for r in _CALLEE_SAVED_X86_64}
        regs["pc"] = _ptr(f["ret"])
    else:
        regs = {"x19": _ptr(f["x19"]), "x20": _ptr(f["x20"]),
                "x29": _ptr(f["x29"]), "x30": _ptr(f["x30"])}
        for i in range(8):
            regs["x%d" % (21 + i)] = _ptr(f["x21_x28"][i])
        regs["pc"] = regs["x30"]
    regs["sp"] = sp + frame_t.sizeof  # as after the switch returns
    return regs


def _task_regs(t):
    """The saved registers of a task that has run, checked against its
    stack: a core may lack it (gdb's gcore skips a mapping at its first
    unreadable page, such as a madvise guard), and memory may be corrupt."""
    tid = int(t["id"])
    stack_t = _type("struct async__stack")
    desc = t["stack"].cast(stack_t.pointer())
    try:
        owner = _ptr(desc["owner"])
        size = int(desc["size"])
    except gdb.MemoryError:
        raise _Error("libasync: task %d's stack %#x cannot be read"
                     % (tid, _ptr(desc)))
    if owner == 0:
        raise _Error(
            "libasync: task %d's stack is not in memory as it should be: "
            "the core file lacks it (gcore stops at a guard page on Linux "
            "6.13+; a kernel core dump has it)" % tid
        )
    if owner != _ptr(t):
        raise _Error("libasync: task %d's stack belongs to %#x: corrupt"
                     % (tid, owner))
    regs = _saved_regs(t["ctx"])
    top = _ptr(desc)  # the descriptor sits right above the usable range
    if not top - size <= regs["sp"] <= top:
        raise _Error(
            "libasync: task %d's saved stack pointer %#x is outside its "
            "stack [%#x, %#x)" % (tid, regs["sp"], top - size, top)
        )
    return regs


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _ContextUnwinder(gdb.unwinder.Unwinder):
    """While `regs` is set, says the innermost frame it is asked about was
    called from those registers, which moves the rest of the backtrace onto
    the saved context's stack."""

    def __init__(self):
        super().__init__("libasync-context")
        self.regs = None
        self.level = None  # the level of the borrowed frame

    def __call__(self, pending):
        if self.regs is None:
            return None
        if self.level is None:
            self.level = pending.level()
        if pending.level() != self.level:
            return None
        u64 = _type("unsigned long")
        pc = pending.read_register("pc")
        # The borrowed frame's id lies just below the saved stack pointer:
        # gdb stops a backtrace whose caller's frame looks inner to its
        # callee, and the task's stack may lie anywhere in memory.
        sp = gdb.Value(self.regs["sp"] - 16).cast(u64)
        info = pending.create_unwind_info(_FrameId(sp, pc))
        for reg, val in self.regs.items():
            info.add_saved_register(reg, gdb.Value(val).cast(u64))
        return info


# The first frame of every context. gdb 13 shows the assembly one as
# "async.ctx_trampoline" when clang assembled it.
_TRAMPOLINE = ("async__ctx_trampoline", "async.ctx_trampoline")


class _HideBorrowed:
    """While a context is shown, hides the borrowed frame from backtraces
    and ends them at the context's first frame (the ucontext build's
    trampoline has libc's __start_context above it, and garbage above
    that)."""

    def __init__(self, unwinder):
        self.name = "libasync-context"
        self.priority = 100
        self.enabled = True
        self.unwinder = unwinder

    def filter(self, frames):
        if self.unwinder.regs is None:
            return frames
        return self._shown(frames)

    def _shown(self, frames):
        for d in frames:
            f = d.inferior_frame()
            level = self.unwinder.level
            if level is not None and f.level() <= level:
                continue
            yield d
            if f.name() in _TRAMPOLINE:
                return


_unwinder = _ContextUnwinder()


def _thread_bt(loop, bt_args):
    """The backtrace of code running on the loop's own thread."""
    try:
        mine = _ptr(gdb.parse_and_eval("async__tls_loop")) == _ptr(loop)
    except gdb.error:
        mine = True  # found in this thread's frames, or named by the user
    if not mine:
        raise _Error(
            "libasync: loop %#x runs on another thread: select it "
            "(thread N), then bt" % _ptr(loop)
        )
    gdb.execute("backtrace " + bt_args)


def _show_context(regs, bt_args):
    if not hasattr(gdb.PendingFrame, "level"):
        raise _Error("libasync: task backtraces need gdb 12 or later")
    frame = gdb.selected_frame()
    _unwinder.regs = regs
    _unwinder.level = None
    gdb.invalidate_cached_frames()
    try:
        gdb.execute("backtrace " + bt_args)
    finally:
        _unwinder.regs = None
        _unwinder.level = None
        gdb.invalidate_cached_frames()
        try:
            frame.select()
        except gdb.error:
            pass


class _TaskPrefix(gdb.Command):
    """Commands for the tasks of a libasync loop: async-task bt."""

    def __init__(self):
        super().__init__("async-task", gdb.COMMAND_STACK, prefix=True)


class _TaskBt(gdb.Command):
    """Backtrace of a libasync task.
Usage: async-task bt ID|all|loop [BACKTRACE-OPTIONS]
ID is a task id from 'info async-tasks', of the loop $async_loop if set,
else of the one running on the selected thread; 'all' is every task of it.
A suspended task (or a ready one that has run) shows the stack it left at
its last switch, numbered on from the thread's innermost frame (hidden); the
running task is the thread's own backtrace; 'loop' shows the loop's stack,
saved while a task runs. The options go to gdb's backtrace command (full,
-full, -frame-arguments all, a count)."""

    def __init__(self):
        super().__init__("async-task bt", gdb.COMMAND_STACK)

    @_command
    def invoke(self, arg, from_tty):
        words = arg.split(None, 1)
        if not words:
            raise _Error("usage: async-task bt ID|all|loop [BACKTRACE-OPTIONS]")
        rest = words[1] if len(words) > 1 else ""
        loop = _loop(None)
        current = _ptr(loop["current"])
        if words[0] == "loop":
            if not current:
                gdb.write("the loop's own code runs: its stack is the thread's\n")
                _thread_bt(loop, rest)
            else:
                _show_context(_saved_regs(loop["ctx"]), rest)
            return
        if words[0] == "all":
            for i, t in enumerate(list(_tasks(loop))):
                if i:
                    gdb.write("\n")
                try:
                    self._one(loop, t, current, rest)
                except _Error as e:
                    gdb.write("%s\n" % e)
            return
        try:
            want = int(words[0], 0)
        except ValueError:
            raise _Error("libasync: '%s' is not a task id" % words[0])
        for t in _tasks(loop):
            if int(t["id"]) == want:
                self._one(loop, t, current, rest)
                return
        raise _Error("libasync: no task %d in loop %#x" % (want, _ptr(loop)))

    @staticmethod
    def _one(loop, t, current, bt_args):
        tid = int(t["id"])
        gdb.write("task %d '%s', %s\n" % (tid, _name(t), _state(t)))
        if _ptr(t) == current:
            _thread_bt(loop, bt_args)
        elif not _ptr(t["stack"]) or not int(t["started"]):
            gdb.write("not started: no stack yet\n")
        else:
            _show_context(_task_regs(t), bt_args)


def _register():
    gdb.unwinder.register_unwinder(None, _unwinder, replace=True)
    gdb.frame_filters["libasync-context"] = _HideBorrowed(_unwinder)
    _InfoTasks()
    _TaskPrefix()
    _TaskBt()


# }====

_register()
