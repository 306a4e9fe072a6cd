using System.Globalization;

namespace Engine.Chat.Jinja;

/// <summary>
/// Recursive-descent parser for jinja2's grammar (jinja2/parser.py): the same operator precedence (filters and tests
/// bind tighter than arithmetic, `~` between + and *), Python's chained comparisons, and the statements chat templates
/// use. Nesting is bounded so a hostile template cannot exhaust the stack while parsing.
/// </summary>
internal sealed class JinjaParser
{
    const int MaxNesting = 100;
    static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    readonly List<Token> _tokens;
    int _i, _depth;

    // jinja2 rejects an unknown filter or test when it compiles the template, except inside an if-statement or an
    // inline if-expression (so `{% if x is filter %}` guards work): there the error waits until it runs. _soft is true
    // while parsing such a part; _unknown holds the errors found outside one, thrown when the statement is complete
    // (an inline if found later in the same expression still excuses them).
    bool _soft;
    readonly List<JinjaTemplateException> _unknown = [];

    JinjaParser(List<Token> tokens) => _tokens = tokens;

    public static IReadOnlyList<Stmt> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody([]);
        if (parser.Current.Kind != TokenKind.End) throw parser.Error($"unexpected '{parser.Current.Value}'");
        return body;
    }

    Token Current => _tokens[_i];
    Token Peek(int ahead = 1) => _tokens[Math.Min(_i + ahead, _tokens.Count - 1)];
    Token Next() => _tokens[_i++];

    JinjaTemplateException Error(string message, Token? at = null)
    {
        var t = at ?? Current;
        return JinjaTemplateException.At(message, t.Line, t.Column);
    }

    Token Expect(TokenKind kind, string? value = null)
    {
        var t = Current;
        if (t.Kind != kind || (value is not null && t.Value != value))
            throw Error($"expected {(value is null ? kind.ToString() : $"'{value}'")}, got {Describe(t)}");
        _i++;
        return t;
    }

    static string Describe(Token t) => t.Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        _ => $"'{t.Value}'",
    };

    bool SkipOp(string op)
    {
        if (!Current.IsOp(op)) return false;
        _i++;
        return true;
    }

    bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        _i++;
        return true;
    }

    void Enter()
    {
        if (++_depth > MaxNesting) throw Error($"template nesting is deeper than {MaxNesting} levels");
    }

    // ---- statements ----

    /// <summary>Statements up to (not including) a block tag named in <paramref name="endTags"/>.</summary>
    List<Stmt> ParseBody(string[] endTags)
    {
        Enter();
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.End:
                    if (endTags.Length > 0) throw Error($"unexpected end of template, expected '{string.Join("' or '", endTags)}'");
                    _depth--;
                    return body;
                case TokenKind.Data:
                    _i++;
                    body.Add(new DataStmt(t.Line, t.Value));
                    break;
                case TokenKind.VariableBegin:
                    _i++;
                    body.Add(new OutputStmt(t.Line, ParseTuple()));
                    Expect(TokenKind.VariableEnd);
                    ThrowUnknownNames();
                    break;
                case TokenKind.BlockBegin:
                    var name = Peek();
                    if (name.Kind == TokenKind.Name && endTags.Contains(name.Value)) { _depth--; return body; }
                    _i++;
                    body.Add(ParseStatement());
                    ThrowUnknownNames();
                    break;
                default:
                    throw Error($"unexpected {Describe(t)}");
            }
        }
    }

    void ThrowUnknownNames()
    {
        if (_unknown.Count > 0) throw _unknown[0];
    }

    /// <summary>A body that jinja2 compiles as its own frame (loop, macro, call, filter, with, set block): unknown
    /// filters in it are errors again even inside an if.</summary>
    List<Stmt> ParseFrameBody(string[] endTags)
    {
        bool soft = _soft;
        _soft = false;
        var body = ParseBody(endTags);
        _soft = soft;
        return body;
    }

    /// <summary>Consumes {% name %} ending a body.</summary>
    void EndTag(string name)
    {
        Expect(TokenKind.BlockBegin);
        Expect(TokenKind.Name, name);
        Expect(TokenKind.BlockEnd);
    }

    Stmt ParseStatement()
    {
        var t = Current;
        if (t.Kind != TokenKind.Name) throw Error("tag name expected");
        _i++;
        switch (t.Value)
        {
            case "if": return ParseIf(t);
            case "for": return ParseFor(t);
            case "set": return ParseSet(t);
            case "macro": return ParseMacro(t);
            case "call": return ParseCallBlock(t);
            case "filter": return ParseFilterBlock(t);
            case "with": return ParseWith(t);
            case "generation":
            {
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endgeneration"]);
                EndTag("endgeneration");
                return new ScopeStmt(t.Line, body);
            }
            case "break": Expect(TokenKind.BlockEnd); return new BreakStmt(t.Line);
            case "continue": Expect(TokenKind.BlockEnd); return new ContinueStmt(t.Line);
            default: throw Error($"unknown tag '{t.Value}'", t);
        }
    }

    Stmt ParseIf(Token t)
    {
        bool soft = _soft;
        _soft = true;
        var result = ParseIfRest(t);
        _soft = soft;
        return result;
    }

    Stmt ParseIfRest(Token t)
    {
        var test = ParseTuple(withCondExpr: false);
        Expect(TokenKind.BlockEnd);
        var then = ParseBody(["elif", "else", "endif"]);
        Expect(TokenKind.BlockBegin);
        var tag = Expect(TokenKind.Name);
        List<Stmt> otherwise = [];
        if (tag.Value == "elif") otherwise = [ParseIfRest(tag)];
        else
        {
            if (tag.Value == "else")
            {
                Expect(TokenKind.BlockEnd);
                otherwise = ParseBody(["endif"]);
                Expect(TokenKind.BlockBegin);
                Expect(TokenKind.Name, "endif");
            }
            Expect(TokenKind.BlockEnd);
        }
        return new IfStmt(t.Line, test, then, otherwise);
    }

    Stmt ParseFor(Token t)
    {
        var target = ParseAssignTarget(allowNamespace: false);
        Expect(TokenKind.Name, "in");
        var iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = SkipName("if") ? ParseExpression() : null;
        bool recursive = SkipName("recursive");
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endfor", "else"]);
        List<Stmt> otherwise = [];
        Expect(TokenKind.BlockBegin);
        if (SkipName("else"))
        {
            Expect(TokenKind.BlockEnd);
            otherwise = ParseFrameBody(["endfor"]);
            Expect(TokenKind.BlockBegin);
        }
        Expect(TokenKind.Name, "endfor");
        Expect(TokenKind.BlockEnd);
        return new ForStmt(t.Line, target, iterable, filter, body, otherwise, recursive);
    }

    Stmt ParseSet(Token t)
    {
        var target = ParseAssignTarget(allowNamespace: true);
        if (SkipOp("="))
        {
            var value = ParseTuple();
            Expect(TokenKind.BlockEnd);
            return new SetStmt(t.Line, target, value);
        }
        var filters = ParseFilterChain();
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endset"]);
        EndTag("endset");
        return new SetBlockStmt(t.Line, target, filters, body);
    }

    List<FilterExpr> ParseFilterChain()
    {
        var filters = new List<FilterExpr>();
        while (SkipOp("|")) filters.Add(ParseFilter(null));
        return filters;
    }

    Stmt ParseMacro(Token t)
    {
        var name = Expect(TokenKind.Name).Value;
        var parameters = ParseSignature();
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endmacro"]);
        EndTag("endmacro");
        return new MacroStmt(t.Line, name, parameters, body);
    }

    List<MacroParameter> ParseSignature()
    {
        Expect(TokenKind.Operator, "(");
        var parameters = new List<MacroParameter>();
        while (!SkipOp(")"))
        {
            if (parameters.Count > 0) Expect(TokenKind.Operator, ",");
            if (SkipOp(")")) break;
            var name = Expect(TokenKind.Name).Value;
            if (name.StartsWith('_')) throw Error($"parameter names cannot start with '_': '{name}'");
            var fallback = SkipOp("=") ? ParseExpression() : null;
            if (fallback is null && parameters.Count > 0 && parameters[^1].Default is not null)
                throw Error("non-default argument follows default argument");
            parameters.Add(new MacroParameter(name, fallback));
        }
        return parameters;
    }

    Stmt ParseCallBlock(Token t)
    {
        var parameters = Current.IsOp("(") ? ParseSignature() : [];
        var call = ParseExpression() as CallExpr ?? throw Error("expected a call", t);
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endcall"]);
        EndTag("endcall");
        return new CallBlockStmt(t.Line, call, parameters, body);
    }

    Stmt ParseFilterBlock(Token t)
    {
        var filters = new List<FilterExpr> { ParseFilter(null) };
        filters.AddRange(ParseFilterChain());
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endfilter"]);
        EndTag("endfilter");
        return new FilterBlockStmt(t.Line, filters, body);
    }

    Stmt ParseWith(Token t)
    {
        var assignments = new List<(Expr, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0) Expect(TokenKind.Operator, ",");
            var target = ParseAssignTarget(allowNamespace: false);
            Expect(TokenKind.Operator, "=");
            assignments.Add((target, ParseExpression()));
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseFrameBody(["endwith"]);
        EndTag("endwith");
        return new WithStmt(t.Line, assignments, body);
    }

    /// <summary>A name, names separated by commas (optionally in parentheses), or (for set) namespace.attribute.</summary>
    Expr ParseAssignTarget(bool allowNamespace)
    {
        var first = Current;
        if (allowNamespace && first.Kind == TokenKind.Name && Peek().IsOp("."))
        {
            _i += 2;
            var attr = Expect(TokenKind.Name);
            return new AttributeExpr(first.Line, new NameExpr(first.Line, first.Value), attr.Value);
        }
        bool parens = SkipOp("(");
        var names = new List<Expr>();
        do
        {
            if (names.Count > 0 && (Current.IsOp(")") || Current.IsName("in") || Current.IsOp("="))) break;
            var name = Expect(TokenKind.Name);
            if (name.Value is "true" or "false" or "none" or "True" or "False" or "None")
                throw Error($"cannot assign to '{name.Value}'", name);
            names.Add(new NameExpr(name.Line, name.Value));
        } while (SkipOp(","));
        if (parens) Expect(TokenKind.Operator, ")");
        return names.Count == 1 && !parens && !_tokens[_i - 1].IsOp(",") ? names[0] : new ListExpr(first.Line, names, IsTuple: true);
    }

    // ---- expressions ----

    bool IsTupleEnd(string? extraEnd) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.End || Current.IsOp(")")
        || (extraEnd is not null && Current.IsName(extraEnd));

    /// <summary>An expression, or several separated by commas (a tuple without parentheses).</summary>
    Expr ParseTuple(bool withCondExpr = true, string? extraEnd = null, bool explicitParens = false)
    {
        var line = Current.Line;
        var items = new List<Expr>();
        bool sawComma = false;
        while (true)
        {
            if (items.Count > 0)
            {
                if (!SkipOp(",")) break;
                sawComma = true;
            }
            if (IsTupleEnd(extraEnd)) break;
            items.Add(ParseExpression(withCondExpr));
        }
        if (!sawComma)
        {
            if (items.Count == 1) return items[0];
            if (!explicitParens) throw Error($"expected an expression, got {Describe(Current)}");
        }
        return new ListExpr(line, items, IsTuple: true);
    }

    Expr ParseExpression(bool withCondExpr = true)
    {
        Enter();
        var e = withCondExpr ? ParseCondExpr() : ParseOr();
        _depth--;
        return e;
    }

    Expr ParseCondExpr()
    {
        int unknownBefore = _unknown.Count;
        var e = ParseOr();
        if (!Current.IsName("if")) return e;
        bool soft = _soft;
        _soft = true;
        _unknown.RemoveRange(unknownBefore, _unknown.Count - unknownBefore);
        while (Current.IsName("if"))
        {
            var line = Next().Line;
            var test = ParseOr();
            var otherwise = SkipName("else") ? ParseCondExpr() : null;
            e = new ConditionalExpr(line, test, e, otherwise);
        }
        _soft = soft;
        return e;
    }

    Expr ParseOr()
    {
        var e = ParseAnd();
        while (Current.IsName("or")) { var line = Next().Line; e = new BinaryExpr(line, "or", e, ParseAnd()); }
        return e;
    }

    Expr ParseAnd()
    {
        var e = ParseNot();
        while (Current.IsName("and")) { var line = Next().Line; e = new BinaryExpr(line, "and", e, ParseNot()); }
        return e;
    }

    Expr ParseNot()
    {
        if (!Current.IsName("not")) return ParseCompare();
        var line = Next().Line;
        Enter();
        var operand = ParseNot();
        _depth--;
        return new UnaryExpr(line, "not", operand);
    }

    Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Value)) rest.Add((Next().Value, ParseMath1()));
            else if (SkipName("in")) rest.Add(("in", ParseMath1()));
            else if (Current.IsName("not") && Peek().IsName("in")) { _i += 2; rest.Add(("not in", ParseMath1())); }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first.Line, first, rest);
    }

    Expr ParseMath1()
    {
        var e = ParseConcat();
        while (Current.IsOp("+") || Current.IsOp("-")) { var op = Next(); e = new BinaryExpr(op.Line, op.Value, e, ParseConcat()); }
        return e;
    }

    Expr ParseConcat()
    {
        var parts = new List<Expr> { ParseMath2() };
        while (SkipOp("~")) parts.Add(ParseMath2());
        return parts.Count == 1 ? parts[0] : new ConcatExpr(parts[0].Line, parts);
    }

    Expr ParseMath2()
    {
        var e = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Next();
            e = new BinaryExpr(op.Line, op.Value, e, ParsePow());
        }
        return e;
    }

    Expr ParsePow()
    {
        var e = ParseUnary();
        while (Current.IsOp("**")) { var op = Next(); e = new BinaryExpr(op.Line, "**", e, ParseUnary()); }
        return e;
    }

    Expr ParseUnary(bool withFilter = true)
    {
        Enter();
        Expr e;
        if (Current.IsOp("-") || Current.IsOp("+"))
        {
            var op = Next();
            e = new UnaryExpr(op.Line, op.Value, ParseUnary(withFilter: false));
        }
        else e = ParsePrimary();
        e = ParsePostfix(e);
        if (withFilter) e = ParseFilterExpr(e);
        _depth--;
        return e;
    }

    Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(t.Line, true),
                    "false" or "False" => new ConstExpr(t.Line, false),
                    "none" or "None" => new ConstExpr(t.Line, null),
                    _ => new NameExpr(t.Line, t.Value),
                };
            case TokenKind.String:
                var text = t.Value;
                while (Current.Kind == TokenKind.String) text += Next().Value;
                return new ConstExpr(t.Line, text);
            case TokenKind.Integer:
                if (long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return new ConstExpr(t.Line, n);
                return t.Value.Length <= 4300
                    ? new ConstExpr(t.Line, System.Numerics.BigInteger.Parse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture))
                    : throw Error("integer literal too large", t);
            case TokenKind.Float:
                return new ConstExpr(t.Line, double.Parse(t.Value, NumberStyles.Float, CultureInfo.InvariantCulture));
            case TokenKind.Operator when t.Value == "(":
                var inner = ParseTuple(explicitParens: true);
                Expect(TokenKind.Operator, ")");
                return inner;
            case TokenKind.Operator when t.Value == "[":
                var items = new List<Expr>();
                while (!SkipOp("]"))
                {
                    if (items.Count > 0) Expect(TokenKind.Operator, ",");
                    if (SkipOp("]")) break;
                    items.Add(ParseExpression());
                }
                return new ListExpr(t.Line, items, IsTuple: false);
            case TokenKind.Operator when t.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!SkipOp("}"))
                {
                    if (pairs.Count > 0) Expect(TokenKind.Operator, ",");
                    if (SkipOp("}")) break;
                    var key = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    pairs.Add((key, ParseExpression()));
                }
                return new DictExpr(t.Line, pairs);
            default:
                throw Error($"unexpected {Describe(t)}", t);
        }
    }

    Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (Current.IsOp("."))
            {
                var dot = Next();
                var attr = Next();
                if (attr.Kind == TokenKind.Name) e = new AttributeExpr(dot.Line, e, attr.Value);
                else if (attr.Kind == TokenKind.Integer && long.TryParse(attr.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                    e = new ItemExpr(dot.Line, e, new ConstExpr(dot.Line, index));
                else throw Error("expected name or number after '.'", attr);
            }
            else if (Current.IsOp("[")) e = ParseSubscript(e, Next());
            else if (Current.IsOp("(")) e = ParseCall(e);
            else return e;
        }
    }

    Expr ParseSubscript(Expr target, Token open)
    {
        var indexes = new List<Expr>();
        while (!SkipOp("]"))
        {
            if (indexes.Count > 0) Expect(TokenKind.Operator, ",");
            indexes.Add(ParseSubscribed());
        }
        if (indexes.Count == 0) throw Error("expected a subscript", open);
        var index = indexes.Count == 1 ? indexes[0] : new ListExpr(open.Line, indexes, IsTuple: true);
        return new ItemExpr(open.Line, target, index);
    }

    Expr ParseSubscribed()
    {
        var line = Current.Line;
        Expr? start = null;
        if (!Current.IsOp(":"))
        {
            start = ParseExpression();
            if (!Current.IsOp(":")) return start;
        }
        Next();
        Expr? stop = Current.IsOp("]") || Current.IsOp(",") || Current.IsOp(":") ? null : ParseExpression();
        Expr? step = null;
        if (SkipOp(":") && !(Current.IsOp("]") || Current.IsOp(","))) step = ParseExpression();
        return new SliceExpr(line, start, stop, step);
    }

    CallExpr ParseCall(Expr callee)
    {
        var line = Current.Line;
        return new CallExpr(line, callee, ParseCallArguments());
    }

    Arguments ParseCallArguments()
    {
        Expect(TokenKind.Operator, "(");
        var positional = new List<Expr>();
        var keyword = new List<(string, Expr)>();
        Expr? spread = null, keywordSpread = null;
        while (!SkipOp(")"))
        {
            if (positional.Count + keyword.Count > 0 || spread is not null || keywordSpread is not null)
            {
                Expect(TokenKind.Operator, ",");
                if (SkipOp(")")) break;
            }
            if (SkipOp("*")) spread = spread is null ? ParseExpression() : throw Error("only one *argument is allowed");
            else if (SkipOp("**")) keywordSpread = keywordSpread is null ? ParseExpression() : throw Error("only one **argument is allowed");
            else if (Current.Kind == TokenKind.Name && Peek().IsOp("="))
            {
                var name = Next().Value;
                Next();
                keyword.Add((name, ParseExpression()));
            }
            else
            {
                if (keyword.Count > 0) throw Error("positional argument follows keyword argument");
                positional.Add(ParseExpression());
            }
        }
        return new Arguments(positional, keyword, spread, keywordSpread);
    }

    Expr ParseFilterExpr(Expr e)
    {
        while (true)
        {
            if (SkipOp("|")) e = ParseFilter(e);
            else if (Current.IsName("is")) e = ParseTest(e);
            else if (Current.IsOp("(")) e = ParseCall(e);
            else return e;
        }
    }

    string ParseDottedName()
    {
        var name = Expect(TokenKind.Name).Value;
        while (Current.IsOp(".") && Peek().Kind == TokenKind.Name) { _i++; name += "." + Next().Value; }
        return name;
    }

    FilterExpr ParseFilter(Expr? operand)
    {
        var at = Current;
        var line = at.Line;
        var name = ParseDottedName();
        if (!JinjaFilters.Exists(name) && !_soft) _unknown.Add(Error($"no filter named '{name}'", at));
        var args = Current.IsOp("(") ? ParseCallArguments() : Arguments.None;
        return new FilterExpr(line, operand, name, args);
    }

    Expr ParseTest(Expr operand)
    {
        var line = Next().Line;
        bool negated = SkipName("not");
        var at = Current;
        var name = ParseDottedName();
        if (!JinjaTests.Exists(name) && !_soft) _unknown.Add(Error($"no test named '{name}'", at));
        var args = Arguments.None;
        var t = Current;
        if (t.IsOp("(")) args = ParseCallArguments();
        else if ((t.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float || t.IsOp("[") || t.IsOp("{"))
                 && !t.IsName("else") && !t.IsName("or") && !t.IsName("and"))
        {
            if (t.IsName("is")) throw Error("you cannot chain multiple tests with 'is'");
            args = new Arguments([ParsePostfix(ParsePrimary())], []);
        }
        return new TestExpr(line, operand, name, args, negated);
    }
}
