"""The only code that runs beside a student's file: import it, answer calls with numbers.

Started by grader/runner.py as a fresh interpreter, from a control folder holding this
file, stand_ins.py, request.json and inputs.npz, in a work folder holding the submission
(as vae.py, or as flows.py beside the assignment's own vae.py, which it imports) and the
kit's data/ package. It reads the request, imports what it needs and, when asked, becomes
an unprivileged user for good, all before it reads a line of the student's code; then it
says it started. For each call of the request it writes one frame to the result pipe (or,
for the portable runner, file): a length-prefixed .npz holding plain float64 arrays and a
JSON header. It judges nothing: the parent compares the numbers with values it computes
itself, and trusts nothing else this process does.
"""
import ast
import io
import json
import os
import re
import signal
import struct
import sys
import threading
import traceback

FRAME_MAGIC = b"VAEK"
SAFE_MODULES = ("numpy", "autograd", "scipy", "math", "functools", "itertools", "collections")
SAFE_BUILTINS = {"range", "len", "list", "tuple", "dict", "float", "int", "zip", "print", "object",
                 "staticmethod", "classmethod", "property", "set", "frozenset", "str", "bool"}


# ------------------------------------------------------------------ importing the submission
def definitions_only(tree, safe_modules=SAFE_MODULES):
    """Keep what defines functions and constants; skip training and other top-level work.

    Returns (module tree, [line numbers of skipped statements]). An ``if __name__ ==
    "__main__":`` block and ``sys.path`` edits are dropped silently: importing would not
    run the first, and the child's folder is on the path already.
    """
    safe_names = set(SAFE_BUILTINS)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            for alias in node.names:
                root = (module or alias.name).split(".")[0]
                if root in safe_modules:
                    safe_names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            safe_names.add(node.name)

    def only_safe_calls(node, extra=()):
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                root = sub.func
                while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                    root = root.value if not isinstance(root, ast.Call) else root.func
                if not (isinstance(root, ast.Name) and (root.id in safe_names or root.id in extra)):
                    return False
        return True

    kept, skipped = [], []
    unavailable = set()  # names only a skipped statement would have defined
    kit_names = set()  # what the kit's own notebook test cells import (an exported notebook has them)
    for node in tree.body:
        if _imports_the_grader(node):
            kit_names |= _names_bound(node)
            continue
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id in kit_names):
            continue  # check_function("compute_KL", globals(), hidden): the notebook's test cell
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep = True
        elif (isinstance(node, ast.If) and (_is_main_guard(node) or _is_nbgrader_guard(node))) or _edits_sys_path(node):
            continue
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            keep = True  # docstrings
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and only_safe_calls(node):
            # num_batches = len(train_images) // batch_size looks safe, but not once train_images = load_mnist()
            # was skipped: what depends on a skipped statement is skipped too
            keep = not (_names_read(node) & unavailable)
        elif isinstance(node, ast.Try) and all(isinstance(n, (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign, ast.Try))
                                               and only_safe_calls(n, extra=("sys", "os"))
                                               for n in ast.walk(node) if isinstance(n, ast.stmt) and n is not node):
            keep = True  # import fallbacks, which may add a folder to sys.path
        else:
            keep = False
        bound = _names_bound(node)
        if keep:
            kept.append(node)
            unavailable -= bound
        else:
            skipped.append(node.lineno)
            unavailable |= bound
    return ast.Module(body=kept, type_ignores=[]), skipped


def _names_read(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _names_bound(node):
    """The names a top-level statement defines, wherever in it they are bound."""
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.alias):
            names.add((n.asname or n.name).split(".")[0])
    return names


def _imports_the_grader(node):
    """``from grader... import ...`` or ``import grader...``: the kit's own test cells, in an
    exported notebook; the grader never runs them in the student's process."""
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "grader"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "grader" for a in node.names)


def _is_nbgrader_guard(node):
    """The notebook's training cell, ``if os.environ.get("NBGRADER_EXECUTION"): ...``: a guard,
    like ``if __name__ == "__main__":``."""
    return any(isinstance(n, ast.Constant) and n.value == "NBGRADER_EXECUTION" for n in ast.walk(node.test))


def _is_main_guard(node):
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _edits_sys_path(node):
    """``sys.path.insert(...)`` and the like, as a statement of its own."""
    call = node.value if isinstance(node, ast.Expr) else None
    target = call.func.value if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) else None
    return (isinstance(target, ast.Attribute) and target.attr == "path" and isinstance(target.value, ast.Name)
            and target.value.id == "sys")


def read_python(path):
    """The file's text as Python itself reads a script: a UTF-8 byte-order mark (Windows editors
    write one) or an encoding declaration honoured, CRLF line ends taken as line ends."""
    import tokenize
    with open(path, "rb") as f:
        data = f.read()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    return data.decode(encoding, errors="replace").replace("\r\n", "\n")


DEFINITION = re.compile(r"(async\s+def|def|class)\s+(\w+)")


def parse_by_definitions(source, filename):
    """(tree, {function: why it is missing}): the source parsed whole; when it has a syntax error,
    each top-level definition (with its decorators) is parsed on its own, so that the error costs
    only the definition it is in. Raises the file's SyntaxError when the error is outside every
    definition (in the imports, say)."""
    try:
        return ast.parse(source, filename=filename), {}
    except SyntaxError as error:
        whole = error
    lines = source.splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        if (line.startswith("@") or DEFINITION.match(line)) and not (i and lines[i - 1].startswith("@")):
            starts.append(i)
    if not starts:
        raise whole
    body, broken = [], {}
    for start, end in zip([0] + starts, starts + [len(lines)]):
        text = "\n" * start + "".join(lines[start:end])  # the student's line numbers, kept
        try:
            body.extend(ast.parse(text, filename=filename).body)
        except SyntaxError as e:
            names = [DEFINITION.match(line) for line in lines[start:end] if DEFINITION.match(line)]
            if start < starts[0] or not names:
                raise whole from None
            name = names[0].group(2)
            broken[name] = (f"{name} has a syntax error: {e.msg} ({filename}, line {e.lineno}); "
                            f"the rest of your file was graded")
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in body):
        raise whole  # nothing but the broken definitions: the file as a whole fails, as it did
    return ast.Module(body=body, type_ignores=[]), broken


def import_submission(path, name="vae", safe_modules=SAFE_MODULES, filename=None):
    """Import the file at ``path`` as module ``name``, definitions only; tracebacks and messages
    name ``filename`` (the student's own file name; default NAME.py).

    Returns (module, [line numbers skipped], [(line, why) of kept statements that failed],
    {function: why it is missing}). Each kept statement runs on its own: one that fails costs
    the functions nothing, it is reported; a syntax error costs only the definition it is in."""
    import types
    source = read_python(path)
    filename = filename or f"{name}.py"
    tree, broken = parse_by_definitions(source, filename)
    tree, skipped = definitions_only(tree, safe_modules)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    failed = []
    for statement in tree.body:
        code = compile(ast.Module(body=[statement], type_ignores=[]), filename, "exec")
        try:
            exec(code, module.__dict__)
        except Exception as e:
            failed.append((statement.lineno, f"{type(e).__name__}: {shown(e)}"))
    module.__broken__ = broken  # run_call names the syntax error of a function it kept out
    return module, skipped, failed, broken


# ------------------------------------------------------------------ answering calls
def to_float_array(value, what):
    """Plain float64 ndarray (never a subclass, never an autograd box) or raise TypeError."""
    import numpy as np
    value = getattr(value, "_value", value)  # an autograd box that escaped
    try:
        array = np.array(value, dtype=np.float64, subok=False, order="C")
    except Exception as e:
        raise TypeError(f"{what} is a {type(value).__name__}, not an array of numbers ({e})") from None
    return array.view(np.ndarray)


def build_argument(spec, arrays):
    if "array" in spec:
        return arrays[spec["array"]].copy()
    if "net" in spec:  # a list of layers (W, b), or of flows (u, w, b) with size 3
        names, size = spec["net"], spec.get("size", 2)
        return [tuple(arrays[n].copy() for n in names[i:i + size]) for i in range(0, len(names), size)]
    return spec["number"]


def run_call(module, call, arrays):
    """Answer one call; returns (header, {name: float64 array})."""
    import numpy as np
    name = call["function"]
    fn = getattr(module, name, None)
    broken = getattr(module, "__broken__", {})
    if not callable(fn) and name in broken:
        return {"status": "syntax", "message": broken[name]}, {}
    if not callable(fn):
        return {"status": "missing", "message": f"{name} is not defined in your file"}, {}
    kind = call["kind"]
    args = [build_argument(a, arrays) for a in call["args"]]
    kwargs = {k: build_argument(v, arrays) for k, v in call.get("kwargs", {}).items()}
    try:
        import inspect
        inspect.signature(fn).bind(*args, *([call["t0"]] if kind == "adam_steps" else []), **kwargs)
    except TypeError as e:
        return {"status": "signature", "message": f"{name} cannot be called as the assignment specifies: {e}"}, {}
    except ValueError:
        pass  # no signature to inspect (a builtin); just call it
    if call.get("seed", 0) is not None:  # None: continue the random stream of the calls before
        np.random.seed(call.get("seed", 0))
    replaced = _replace(module, call.get("replace", ()))
    try:
        header, out = _answer(module, fn, name, kind, args, kwargs, call, arrays)
        out.update({f"calls_{n}": np.array(float(len(record))) for n, record in replaced.items()})
        return header, out
    except _BadOutput as e:
        return {"status": "bad_output", "message": str(e)}, {}
    except NotImplementedError as e:
        return not_implemented(name, e)
    except Exception as e:
        return {"status": "raised", "message": f"{name} raised {type(e).__name__}: {shown(e)}{where(e)}"}, {}
    finally:
        _restore(module, replaced)


# what autograd cannot differentiate, as students meet it, and what to write instead
NO_GRADIENT_ADVICE = {"average": "use np.mean, or a sum divided by the batch size",
                      "median": "the lower bound needs a mean, np.mean",
                      "round": "rounding has no useful gradient; keep the values continuous",
                      "floor": "flooring has no useful gradient; keep the values continuous"}


def not_implemented(name, error):
    """A stub's own ``raise NotImplementedError()`` (raised in a student's file) is "not implemented
    yet"; one raised inside autograd or numpy is an error with its real cause named."""
    frames = traceback.extract_tb(error.__traceback__, limit=-TRACEBACK_FRAMES)
    library = frames and any(f"{os.sep}{package}{os.sep}" in frames[-1].filename for package in ("autograd", "numpy"))
    if frames and not library:  # raised in the student's code: a file, or a notebook's cell
        stub = frames[-1].name
        return {"status": "not_implemented", "message": f"{name} is not implemented yet (it raises NotImplementedError)"
                if stub == name else f"{name} calls {stub}, which is not implemented yet"}, {}
    import re
    match = re.search(r"VJP of (\w+) wrt argnum", str(error))
    if match:
        function = match.group(1)
        advice = NO_GRADIENT_ADVICE.get(function, "write it with functions autograd can differentiate "
                                                  "(np.sum, np.mean, np.exp, np.log, np.logaddexp, ...)")
        return {"status": "raised", "message": f"{name}: autograd cannot differentiate np.{function}; {advice}"
                                               f"{where(error)}"}, {}
    return {"status": "raised", "message": f"{name} raised NotImplementedError inside a library: {error}"
                                           f"{where(error)}"}, {}


class _Record(list):
    """The calls one stand-in received, and what it replaced."""
    original = None


def _replace(module, names):
    """Put the grader's stand-ins (grader/stand_ins.py) in place of ``names``; {name: calls recorded}."""
    if not names:
        return {}
    try:
        from stand_ins import STAND_INS  # in the child's folder
    except ImportError:
        from grader.stand_ins import STAND_INS  # in a notebook's kernel
    records = {}
    for n in names:
        records[n] = _Record()
        records[n].original = module.__dict__.get(n)
        module.__dict__[n] = STAND_INS[n](records[n])
    return records


def _restore(module, replaced):
    for n, record in replaced.items():
        if record.original is None:
            module.__dict__.pop(n, None)
        else:
            module.__dict__[n] = record.original


def _outputs(out, name, size):
    """{'out': array}, or {'out0': ..., 'out1': ...} when the function returns a tuple of ``size``."""
    if not size:
        return {"out": to_float_array(out, f"what {name} returned")}
    if not isinstance(out, (tuple, list)) or len(out) != size:
        raise _BadOutput(f"{name} returned {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list))
                                                                    else "") + f", expected a tuple of {size}")
    return {f"out{i}": to_float_array(o, f"item {i} of what {name} returned") for i, o in enumerate(out)}


class _BadOutput(Exception):
    pass


def _answer(module, fn, name, kind, args, kwargs, call, arrays):
    import numpy as np
    if kind == "value":
        return {"status": "ok"}, _outputs(fn(*args, **kwargs), name, call.get("tuple"))
    if kind == "value_and_vjp":
        # One evaluation: its value and the gradient of sum(weights * value) with respect to
        # argument ``wrt``; for a tuple, of the sum over its items of sum(weights[i] * item i).
        from autograd import make_vjp
        import autograd.numpy as anp
        argnum, names = call["wrt"], call["weights"]
        names = [names] if isinstance(names, str) else names
        seen = {}

        def weighted(x):
            out = fn(*(args[:argnum] + [x] + args[argnum + 1:]), **kwargs)
            items = out if call.get("tuple") else [out]
            seen["out"] = out
            if not isinstance(items, (tuple, list)) or len(items) != len(names):
                return 0.0
            if any(np.shape(item) != arrays[w].shape for item, w in zip(items, names)):
                seen["shape"] = True
                return 0.0
            return sum(anp.sum(item * arrays[w]) for item, w in zip(items, names))

        vjp, _ = make_vjp(weighted)(args[argnum])
        outputs = _outputs(seen["out"], name, call.get("tuple"))
        if seen.get("shape"):
            return {"status": "ok"}, outputs  # the parent reports the shape
        return {"status": "ok"}, dict(outputs, grad=to_float_array(vjp(1.0), "the gradient"))
    if kind == "adam_steps":
        params, m, v = args[0], args[2], args[3]
        result = {}
        for step, gradient in enumerate(call["gradients"]):
            # Copies in: an update in place (m *= beta1, params += ...) must not change what was
            # recorded for the previous step, nor the next step's inputs behind its back.
            out = fn(params.copy(), arrays[gradient].copy(), m.copy(), v.copy(), call["t0"] + step, **kwargs)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                return {"status": "bad_output",
                        "message": f"{name} returned {type(out).__name__}, expected (params, m, v)"}, result
            params, m, v = (to_float_array(o, f"{label} returned by {name}") for o, label in zip(out, "pmv"))
            result.update({f"params{step}": params, f"m{step}": m, f"v{step}": v})
        return {"status": "ok"}, result
    if kind == "lower_bound":
        try:
            from stand_ins import run_lower_bound  # in the child's folder
        except ImportError:
            from grader.stand_ins import run_lower_bound  # in a notebook's kernel
        return run_lower_bound(module, fn, args, call, arrays, to_float_array)
    return {"status": "error", "message": f"unknown call kind {kind}"}, {}


def where(error, filename=None):
    """ ' (vae.py, line N, in f)' for the deepest frame in the student's file."""
    filename = filename or GRADED_FILE
    # the last frames only: a recursion a million deep would otherwise take a minute to format
    frames = [f for f in traceback.extract_tb(error.__traceback__, limit=-TRACEBACK_FRAMES) if f.filename == filename]
    return f" ({filename}, line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""


TRACEBACK_FRAMES = 200
GRADED_FILE = "vae.py"  # the file whose lines `where` reports: the student's own file name


def send(stream, call_id, header, arrays):
    import numpy as np
    header = dict(header, id=call_id)
    buffer = io.BytesIO()
    np.savez(buffer, __header__=np.array(json.dumps(header)), **arrays)
    payload = buffer.getvalue()
    stream.write(FRAME_MAGIC + struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def drop_privileges(uid):
    """Become user ``uid`` for good (real, effective and saved ids; no groups), and keep that
    user's processes few. Raises OSError when the system refuses."""
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))  # counts that user's processes and threads
    except (ValueError, OSError):
        pass
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise OSError(f"could not become user {uid}")


def work_folder_problem(workdir, filename):
    """Why this process, as the user the student's code runs as, cannot use its work folder as that
    code will (read the submission, list the folder, write in it); None when it can."""
    try:
        with open(os.path.join(workdir, filename), "rb") as f:
            f.read(1)
        os.listdir(workdir)
        probe = os.path.join(workdir, ".grader-probe")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        return (f"the grader's set-up failed: the submission's process cannot use its work folder "
                f"({type(e).__name__}: {e})")
    return None


def main():
    workdir, control, target = sys.argv[1], sys.argv[2], sys.argv[3]
    todo = [int(i) for i in sys.argv[4].split(",")]  # the calls to answer, in order
    # the pipe the Linux runner passed, or the file the portable runner reads (grader/runner.py)
    results = os.fdopen(int(target), "wb") if target.isdigit() else open(target, "wb")
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the file-size limit, writes fail instead
    # Everything this process needs from the grader is read before any student code exists.
    import numpy as np
    with open(os.path.join(control, "request.json")) as f:
        request = json.load(f)
    with np.load(os.path.join(control, "inputs.npz"), allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in saved.files}
    sys.path.insert(0, control)
    import stand_ins  # noqa: F401  (the control folder is closed once this process drops root)
    sys.path[0] = workdir
    os.chdir(workdir)
    if request.get("drop_to") is not None:
        try:
            drop_privileges(request["drop_to"])
        except OSError as e:
            print(f"grader: could not switch to an unprivileged user: {e}", file=sys.stderr)
            return
    global GRADED_FILE
    name = request.get("module", "vae")
    GRADED_FILE = request.get("display_name") or f"{name}.py"
    problem = work_folder_problem(workdir, f"{name}.py")
    if problem:  # never "started": the runner reports the grader's failure, not a 0 for the student
        print(f"grader: {problem}", file=sys.stderr)
        return
    if name != "vae":  # flows.py imports the assignment's own vae.py, which runner.py put beside it
        try:
            import_submission(os.path.join(workdir, "vae.py"))
        except BaseException as e:
            message = f"the assignment's vae.py, which {name}.py imports, failed to import: {type(e).__name__}: {e}"
            if todo[0] == 0:  # no student code has run in this work folder yet: the kit's own failure
                print(f"grader: {message}", file=sys.stderr)
                return
            send(results, "__started__", {}, {})  # a later run: the student's code may have changed the folder
            send(results, "__import__", {"status": "raised", "message": message}, {})
            return
    send(results, "__started__", {}, {})
    try:
        module, skipped, failed, broken = import_submission(os.path.join(workdir, f"{name}.py"), name,
                                                            SAFE_MODULES + ("vae",), filename=GRADED_FILE)
    except SystemExit as e:
        send(results, "__import__", {"status": "raised",
                                     "message": f"your file called exit({shown(e.code)}) while being imported"}, {})
        return
    except BaseException as e:
        message = f"{type(e).__name__}: {shown(e)}" + ("" if isinstance(e, SyntaxError) else where(e))
        send(results, "__import__", {"status": "raised", "message": f"importing your file failed: {message}"}, {})
        return
    send(results, "__import__", {"status": "ok", "skipped": skipped, "failed": failed, "broken": broken}, {})
    threads = threading.active_count()
    for index in todo:
        call = request["calls"][index]
        try:
            header, out = run_call(module, call, arrays)
        except SystemExit as e:
            header, out = {"status": "raised", "message": f"{call['function']} called exit({shown(e.code)})"}, {}
        except BaseException as e:  # KeyboardInterrupt, MemoryError, RecursionError...
            header, out = {"status": "raised", "message": f"{call['function']} raised {type(e).__name__}"}, {}
        left_running = threading.active_count() > threads or started_processes()
        if left_running:  # they would slow, or break, the next function's checks: a fresh process answers them
            header = dict(header, restart=True)
        send(results, call["id"], header, out)
        if left_running:
            break
    # Done: end now, without the interpreter's teardown, so that the runner sees the end of the
    # answers and the process's exit together (it waits for the exit, to report how it ended).
    results.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def shown(value):
    """str(value), or a placeholder when even that fails (an object whose __str__ raises)."""
    try:
        return str(value)
    except BaseException:
        return f"<a {type(value).__name__} that cannot be shown>"


def started_processes():
    """Whether this process has children (Linux; elsewhere False)."""
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                if f.read().strip():
                    return True
    except OSError:
        pass
    return False


if __name__ == "__main__":
    main()
