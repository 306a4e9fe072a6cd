namespace Engine.Chat.Jinja;

/// <summary>jinja2's built-in tests (`x is defined`, `x is divisibleby 3`, ...).</summary>
internal static class JinjaTests
{
    public static bool Apply(JinjaInterpreter ip, string name, object? v, CallArguments args)
    {
        object? Arg(string parameter) => args.Bind(name, [parameter], [])[0];
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "string": return v is string or Markup;
            case "number": return Py.IsNumber(v);
            case "integer": return v is long or System.Numerics.BigInteger;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "mapping": return v is JinjaDict;
            case "iterable": return v is string or Markup or JinjaList or JinjaDict or JinjaIterator or Undefined;
            case "sequence": return v is string or Markup or JinjaList or JinjaDict;
            case "callable": return v is JinjaCallable or LoopContext or Undefined;
            case "escaped": return v is Markup;
            case "eq" or "equalto" or "==": return Py.Equal(v, Arg("other"));
            case "ne" or "!=": return !Py.Equal(v, Arg("other"));
            case "lt" or "lessthan" or "<": return Py.Compare(v, Arg("other"), "<") < 0;
            case "le" or "<=": return Py.Compare(v, Arg("other"), "<=") <= 0;
            case "gt" or "greaterthan" or ">": return Py.Compare(v, Arg("other"), ">") > 0;
            case "ge" or ">=": return Py.Compare(v, Arg("other"), ">=") >= 0;
            case "in": return Py.Contains(Arg("seq"), v);
            case "odd": return Integer(v, name) % 2 != 0;
            case "even": return Integer(v, name) % 2 == 0;
            case "divisibleby":
                long divisor = Integer(Arg("num"), name);
                return divisor == 0 ? throw new JinjaTemplateException("integer division or modulo by zero") : Integer(v, name) % divisor == 0;
            case "lower": return Py.Str(v) is var lower && lower == lower.ToLowerInvariant();
            case "upper": return Py.Str(v) is var upper && upper == upper.ToUpperInvariant();
            case "sameas":
                var other = Arg("other");
                return ReferenceEquals(v, other) || (v is bool or long or string && Py.TypeName(v) == Py.TypeName(other) && Py.Equal(v, other));
            case "filter": return JinjaFilters.Exists(Py.Str(Arg("value")));
            case "test": return Exists(Py.Str(Arg("value")));
            default: throw new JinjaTemplateException($"no test named '{name}'");
        }
    }

    static readonly HashSet<string> Names =
    [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false", "mapping",
        "iterable", "sequence", "callable", "escaped", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=",
        "gt", "greaterthan", ">", "ge", ">=", "in", "odd", "even", "divisibleby", "lower", "upper", "sameas", "filter", "test",
    ];

    public static bool Exists(string name) => Names.Contains(name);

    static long Integer(object? v, string test) => v switch
    {
        long n => n,
        bool b => b ? 1 : 0,
        double d when d == Math.Floor(d) => (long)d,
        Undefined u => throw u.Error(),
        _ => throw new JinjaTemplateException($"test '{test}' needs an integer, not '{Py.TypeName(v)}'"),
    };
}
