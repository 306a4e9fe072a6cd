using System.Runtime.CompilerServices;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>Variables of one block level. jinja2 gives each for-loop iteration, macro call and with-block its own
/// level; if-blocks share their parent's.</summary>
internal sealed class Scope(Scope? parent)
{
    // A level holds a handful of names (a loop's target and `loop`, a macro's parameters), and a loop creates one per
    // iteration: a short list is cheaper to create and search than a dictionary.
    List<KeyValuePair<string, object?>>? _vars;

    public Scope? Parent => parent;

    public void Set(string name, object? value)
    {
        _vars ??= new(2);
        for (int i = 0; i < _vars.Count; i++)
            if (_vars[i].Key == name) { _vars[i] = new(name, value); return; }
        _vars.Add(new(name, value));
    }

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
        {
            if (s._vars is null) continue;
            foreach (var (key, v) in s._vars)
                if (key == name) { value = v; return true; }
        }
        value = null;
        return false;
    }
}

/// <summary>Executes a parsed template: statements write to a bounded output, expressions evaluate to template values
/// with Python semantics. Counts every step against <see cref="JinjaLimits"/>.</summary>
internal sealed class JinjaInterpreter
{
    enum Flow { Normal, Break, Continue }

    readonly IReadOnlyDictionary<string, object?> _variables;
    readonly Dictionary<string, object?> _globals;
    readonly JinjaLimits _limits;
    long _steps;
    int _callDepth;

    /// <summary>The render running on this thread, so value operations deep in <see cref="Py"/> (comparing, printing
    /// or serializing nested values, which can share items and so be exponentially large) count against its steps.</summary>
    [ThreadStatic] static JinjaInterpreter? s_current;

    /// <summary>Counts one unit of work against the current render's step limit (no-op outside a render).</summary>
    public static void Charge() => s_current?.Step();

    public JinjaInterpreter(IReadOnlyDictionary<string, object?> variables, Func<DateTime> clock, JinjaLimits limits)
    {
        _variables = variables;
        _limits = limits;
        _globals = JinjaGlobals.Create(this, clock);
    }

    public JinjaLimits Limits => _limits;

    public string Render(IReadOnlyList<Stmt> body)
    {
        var previous = s_current;
        s_current = this;
        try
        {
            var output = new StringBuilder();
            Exec(body, new Scope(null), output);
            return output.ToString();
        }
        catch (InsufficientExecutionStackException)
        {
            throw new JinjaTemplateException("template recursion is too deep");
        }
        catch (OverflowException)
        {
            throw new JinjaTemplateException("integer overflow");
        }
        catch (Exception e) when (e is not JinjaTemplateException and not OutOfMemoryException)
        {
            // The template and its data are untrusted input: a case the interpreter did not foresee must still reach the
            // caller as a template error (a 400 at a server), never as an unexpected exception.
            throw new JinjaTemplateException($"template failed: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            s_current = previous;
        }
    }

    // ---- limits ----

    public void Step(long cost = 1)
    {
        _steps += cost;
        if (_steps > _limits.MaxSteps)
            throw new JinjaTemplateException($"template exceeded {_limits.MaxSteps} evaluation steps (an endless or very long loop?)");
    }

    /// <summary>Charges for building a string or list of <paramref name="length"/> items and refuses one longer than
    /// the output limit, before it is built.</summary>
    public void CheckSize(long length)
    {
        if (length > _limits.MaxOutputLength)
            throw new JinjaTemplateException($"template built a value of {length} items; the limit is {_limits.MaxOutputLength}");
        Step(1 + length / 64);
    }

    void Append(StringBuilder output, string text)
    {
        if (output.Length + (long)text.Length > _limits.MaxOutputLength)
            throw new JinjaTemplateException($"template output exceeds {_limits.MaxOutputLength} characters");
        Step(1 + text.Length / 64);
        output.Append(text);
    }

    // ---- statements ----

    Flow Exec(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        // An index loop: foreach over the interface would allocate an enumerator per body run (per loop iteration).
        for (int i = 0; i < body.Count; i++)
        {
            var stmt = body[i];
            Step();
            Flow flow;
            try { flow = ExecOne(stmt, scope, output); }
            catch (JinjaTemplateException e) when (!e.Located) { throw e.WithLine(stmt.Line); }
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow ExecOne(Stmt stmt, Scope scope, StringBuilder output)
    {
        switch (stmt)
        {
            case DataStmt d: Append(output, d.Text); return Flow.Normal;
            case OutputStmt o: Append(output, Py.Str(Eval(o.Value, scope))); return Flow.Normal;
            case IfStmt i: return Exec(Py.Truthy(Eval(i.Test, scope)) ? i.Then : i.Else, scope, output);
            case ForStmt f:
                Append(output, RunLoop(f, Eval(f.Iterable, scope), scope, 0));
                return Flow.Normal;
            case SetStmt s: Assign(s.Target, Eval(s.Value, scope), scope); return Flow.Normal;
            case SetBlockStmt s:
                Assign(s.Target, ApplyFilters(s.Filters, RenderBody(s.Body, new Scope(scope)), scope), scope);
                return Flow.Normal;
            case MacroStmt m: scope.Set(m.Name, MakeMacro(m.Name, m.Parameters, m.Body, scope)); return Flow.Normal;
            case CallBlockStmt c:
                var caller = MakeMacro("caller", c.Parameters, c.Body, scope);
                var callee = Eval(c.Call.Callee, scope);
                var args = EvalArguments(c.Call.Args, scope);
                args.Keyword.Add(new("caller", caller));
                Append(output, Py.Str(Invoke(callee, args)));
                return Flow.Normal;
            case FilterBlockStmt fb:
                Append(output, Py.Str(ApplyFilters(fb.Filters, RenderBody(fb.Body, new Scope(scope)), scope)));
                return Flow.Normal;
            case WithStmt w:
                var inner = new Scope(scope);
                foreach (var (target, value) in w.Assignments) Assign(target, Eval(value, scope), inner);
                return Exec(w.Body, inner, output);
            case ScopeStmt g: return Exec(g.Body, scope, output);
            case BreakStmt: return Flow.Break;
            case ContinueStmt: return Flow.Continue;
            default: throw new JinjaTemplateException($"unsupported statement {stmt.GetType().Name}");
        }
    }

    string RenderBody(IReadOnlyList<Stmt> body, Scope scope)
    {
        var sb = new StringBuilder();
        Exec(body, scope, sb);
        return sb.ToString();
    }

    object? ApplyFilters(IReadOnlyList<FilterExpr> filters, object? value, Scope scope)
    {
        foreach (var f in filters) value = JinjaFilters.Apply(this, f.Name, value, EvalArguments(f.Args, scope));
        return value;
    }

    /// <summary>Runs a for loop and returns what it rendered; for a recursive loop, loop(children) calls back here.</summary>
    string RunLoop(ForStmt f, object? iterable, Scope scope, int depth)
    {
        if (depth > 0) EnterCall();
        try
        {
            var items = Py.Iterate(iterable);
            if (f.Filter is not null)
            {
                var kept = new List<object?>();
                foreach (var item in items)
                {
                    Step();
                    var test = new Scope(scope);
                    Assign(f.Target, item, test);
                    if (Py.Truthy(Eval(f.Filter, test))) kept.Add(item);
                }
                items = kept;
            }
            var output = new StringBuilder();
            Func<object?, int, string>? recurse = f.Recursive ? (children, d) => RunLoop(f, children, scope, d) : null;
            var loop = new LoopContext(items, depth, recurse);
            for (int i = 0; i < items.Count; i++)
            {
                Step();
                loop.Index0 = i;
                var iteration = new Scope(scope);
                Assign(f.Target, items[i], iteration);
                iteration.Set("loop", loop);
                if (Exec(f.Body, iteration, output) == Flow.Break) break;
            }
            if (items.Count == 0) Exec(f.Else, new Scope(scope), output);
            return output.ToString();
        }
        finally
        {
            if (depth > 0) _callDepth--;
        }
    }

    void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr n:
                scope.Set(n.Name, value);
                break;
            case ListExpr { IsTuple: true } t:
                var items = Py.Iterate(value);
                if (items.Count != t.Items.Count)
                    throw new JinjaTemplateException(items.Count > t.Items.Count
                        ? $"too many values to unpack (expected {t.Items.Count})"
                        : $"not enough values to unpack (expected {t.Items.Count}, got {items.Count})");
                for (int i = 0; i < items.Count; i++) Assign(t.Items[i], items[i], scope);
                break;
            case AttributeExpr { Target: NameExpr ns } a:
                if (Lookup(ns.Name, scope) is not Namespace target1)
                    throw new JinjaTemplateException($"cannot assign attribute on non-namespace object '{ns.Name}'");
                if (a.Attribute.StartsWith('_')) throw JinjaAttributes.Unsafe(a.Attribute, target1);
                target1.Attributes[a.Attribute] = value;
                break;
            default:
                throw new JinjaTemplateException("cannot assign to this expression");
        }
    }

    JinjaCallable MakeMacro(string name, IReadOnlyList<MacroParameter> parameters, IReadOnlyList<Stmt> body, Scope definition) =>
        new(name, args =>
        {
            EnterCall();
            try
            {
                var scope = new Scope(definition);
                var extraPositional = new List<object?>();
                for (int i = 0; i < args.Positional.Count; i++)
                {
                    if (i < parameters.Count) scope.Set(parameters[i].Name, args.Positional[i]);
                    else extraPositional.Add(args.Positional[i]);
                }
                var extraKeyword = new JinjaDict();
                var given = new HashSet<string>(parameters.Take(args.Positional.Count).Select(p => p.Name));
                foreach (var (key, value) in args.Keyword)
                {
                    if (parameters.Any(p => p.Name == key))
                    {
                        if (!given.Add(key)) throw new JinjaTemplateException($"macro '{name}' got multiple values for argument '{key}'");
                        scope.Set(key, value);
                    }
                    else if (key == "caller") scope.Set("caller", value);
                    else extraKeyword.Set(key, value);
                }
                foreach (var p in parameters)
                    if (!given.Contains(p.Name))
                        scope.Set(p.Name, p.Default is null ? new Undefined($"'{p.Name}' is undefined") : Eval(p.Default, scope));
                scope.Set("varargs", new JinjaList(extraPositional, isTuple: true));
                scope.Set("kwargs", extraKeyword);
                return RenderBody(body, scope);
            }
            finally { _callDepth--; }
        });

    void EnterCall()
    {
        if (++_callDepth > _limits.MaxCallDepth)
        {
            _callDepth--;
            throw new JinjaTemplateException($"template recursion deeper than {_limits.MaxCallDepth} calls");
        }
    }

    // ---- expressions ----

    object? Lookup(string name, Scope scope)
    {
        if (scope.TryGet(name, out var value)) return value;
        if (_variables.TryGetValue(name, out value)) return value;
        if (_globals.TryGetValue(name, out value)) return value;
        return new Undefined($"'{name}' is undefined");
    }

    public object? Eval(Expr e, Scope scope)
    {
        Step();
        RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return Lookup(n.Name, scope);
            case AttributeExpr a: return JinjaAttributes.Get(this, Eval(a.Target, scope), a.Attribute);
            case ItemExpr i:
                var target = Eval(i.Target, scope);
                return i.Index is SliceExpr s
                    ? JinjaAttributes.Slice(this, target, EvalOptional(s.Start, scope), EvalOptional(s.Stop, scope), EvalOptional(s.Step, scope))
                    : JinjaAttributes.GetItem(this, target, Eval(i.Index, scope));
            case ListExpr l:
                var items = new List<object?>(l.Items.Count);
                foreach (var item in l.Items) items.Add(Eval(item, scope));
                return new JinjaList(items, l.IsTuple);
            case DictExpr d:
                var dict = new JinjaDict();
                foreach (var (key, value) in d.Pairs) dict.Set(Eval(key, scope), Eval(value, scope));
                return dict;
            case UnaryExpr u: return Unary(u.Op, Eval(u.Operand, scope));
            case BinaryExpr { Op: "and" } b:
                var left = Eval(b.Left, scope);
                return Py.Truthy(left) ? Eval(b.Right, scope) : left;
            case BinaryExpr { Op: "or" } b:
                var first = Eval(b.Left, scope);
                return Py.Truthy(first) ? first : Eval(b.Right, scope);
            case BinaryExpr b: return JinjaOperators.Binary(this, b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
            case CompareExpr c: return Compare(c, scope);
            case ConcatExpr c:
                var sb = new StringBuilder();
                foreach (var part in c.Parts)
                {
                    var text = Py.Str(Eval(part, scope));
                    CheckSize((long)sb.Length + text.Length);
                    sb.Append(text);
                }
                return sb.ToString();
            case ConditionalExpr c:
                if (Py.Truthy(Eval(c.Test, scope))) return Eval(c.Then, scope);
                return c.Else is null ? new Undefined("the inline if-expression evaluated to false and no else section was defined") : Eval(c.Else, scope);
            case CallExpr c: return Invoke(Eval(c.Callee, scope), EvalArguments(c.Args, scope));
            case FilterExpr f:
                return JinjaFilters.Apply(this, f.Name, f.Operand is null ? null : Eval(f.Operand, scope), EvalArguments(f.Args, scope));
            case TestExpr t:
                var result = JinjaTests.Apply(this, t.Name, Eval(t.Operand, scope), EvalArguments(t.Args, scope));
                return t.Negated ? !result : result;
            default: throw new JinjaTemplateException($"unsupported expression {e.GetType().Name}");
        }
    }

    object? EvalOptional(Expr? e, Scope scope) => e is null ? null : Eval(e, scope);

    CallArguments EvalArguments(Arguments args, Scope scope)
    {
        var positional = new List<object?>(args.Positional.Count);
        foreach (var p in args.Positional) positional.Add(Eval(p, scope));
        if (args.Spread is not null) positional.AddRange(Py.Iterate(Eval(args.Spread, scope)));
        var keyword = new List<KeyValuePair<string, object?>>(args.Keyword.Count);
        foreach (var (name, value) in args.Keyword) keyword.Add(new(name, Eval(value, scope)));
        if (args.KeywordSpread is not null)
        {
            if (Eval(args.KeywordSpread, scope) is not JinjaDict extra)
                throw new JinjaTemplateException("argument after ** must be a mapping");
            foreach (var (key, value) in extra.Pairs)
                keyword.Add(new(key as string ?? throw new JinjaTemplateException("keywords must be strings"), value));
        }
        return new CallArguments(positional, keyword);
    }

    public object? Invoke(object? callee, CallArguments args) => callee switch
    {
        JinjaCallable f => f.Invoke(args),
        LoopContext loop => loop.Call(args),
        Undefined u => throw u.Error(),
        _ => throw new JinjaTemplateException($"'{Py.TypeName(callee)}' object is not callable"),
    };

    static object? Unary(string op, object? v)
    {
        if (op == "not") return !Py.Truthy(v);
        if (v is Undefined u) throw u.Error();
        return (op, v) switch
        {
            // Arms are cast to object: otherwise C# would give the switch the type double and turn ints into floats.
            ("-", long n) => n == long.MinValue ? -(System.Numerics.BigInteger)n : (object)(-n),
            ("-", double d) => -d,
            ("-", System.Numerics.BigInteger big) => Py.Normalize(-big),
            ("-", bool b) => b ? -1L : 0L,
            ("+", long or double or System.Numerics.BigInteger) => v,
            ("+", bool b) => b ? 1L : 0L,
            _ => throw new JinjaTemplateException($"bad operand type for unary {op}: '{Py.TypeName(v)}'"),
        };
    }

    bool Compare(CompareExpr c, Scope scope)
    {
        var left = Eval(c.First, scope);
        foreach (var (op, operand) in c.Rest)
        {
            var right = Eval(operand, scope);
            bool ok = op switch
            {
                "==" => Py.Equal(left, right),
                "!=" => !Py.Equal(left, right),
                "<" => Py.Compare(left, right, op) < 0,
                "<=" => Py.Compare(left, right, op) <= 0,
                ">" => Py.Compare(left, right, op) > 0,
                ">=" => Py.Compare(left, right, op) >= 0,
                "in" => Py.Contains(right, left),
                "not in" => !Py.Contains(right, left),
                _ => throw new JinjaTemplateException($"unknown comparison {op}"),
            };
            if (!ok) return false;
            left = right;
        }
        return true;
    }
}
