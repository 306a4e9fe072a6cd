namespace Engine.Chat.Jinja;

// The syntax tree. Every node keeps the line it starts on, for runtime error messages.

internal abstract record Node(int Line);

internal abstract record Expr(int Line) : Node(Line);
internal sealed record ConstExpr(int Line, object? Value) : Expr(Line);
internal sealed record NameExpr(int Line, string Name) : Expr(Line);
internal sealed record AttributeExpr(int Line, Expr Target, string Attribute) : Expr(Line);
internal sealed record ItemExpr(int Line, Expr Target, Expr Index) : Expr(Line);
internal sealed record SliceExpr(int Line, Expr? Start, Expr? Stop, Expr? Step) : Expr(Line);
internal sealed record ListExpr(int Line, IReadOnlyList<Expr> Items, bool IsTuple) : Expr(Line);
internal sealed record DictExpr(int Line, IReadOnlyList<(Expr Key, Expr Value)> Pairs) : Expr(Line);
internal sealed record UnaryExpr(int Line, string Op, Expr Operand) : Expr(Line);
internal sealed record BinaryExpr(int Line, string Op, Expr Left, Expr Right) : Expr(Line);
/// <summary>Python's chained comparison: a &lt; b &lt; c.</summary>
internal sealed record CompareExpr(int Line, Expr First, IReadOnlyList<(string Op, Expr Operand)> Rest) : Expr(Line);
internal sealed record ConcatExpr(int Line, IReadOnlyList<Expr> Parts) : Expr(Line);
internal sealed record ConditionalExpr(int Line, Expr Test, Expr Then, Expr? Else) : Expr(Line);
/// <summary>Call arguments; <paramref name="Spread"/> is `*expr` and <paramref name="KeywordSpread"/> `**expr`.</summary>
internal sealed record Arguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Keyword,
    Expr? Spread = null, Expr? KeywordSpread = null)
{
    public static readonly Arguments None = new([], []);
}
internal sealed record CallExpr(int Line, Expr Callee, Arguments Args) : Expr(Line);
internal sealed record FilterExpr(int Line, Expr? Operand, string Name, Arguments Args) : Expr(Line);
internal sealed record TestExpr(int Line, Expr Operand, string Name, Arguments Args, bool Negated) : Expr(Line);

internal abstract record Stmt(int Line) : Node(Line);
internal sealed record DataStmt(int Line, string Text) : Stmt(Line);
internal sealed record OutputStmt(int Line, Expr Value) : Stmt(Line);
internal sealed record IfStmt(int Line, Expr Test, IReadOnlyList<Stmt> Then, IReadOnlyList<Stmt> Else) : Stmt(Line);
internal sealed record ForStmt(int Line, Expr Target, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body,
    IReadOnlyList<Stmt> Else, bool Recursive) : Stmt(Line);
/// <summary>Target is a name, a tuple of names, or namespace.attribute.</summary>
internal sealed record SetStmt(int Line, Expr Target, Expr Value) : Stmt(Line);
internal sealed record SetBlockStmt(int Line, Expr Target, IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Stmt> Body) : Stmt(Line);
internal sealed record MacroParameter(string Name, Expr? Default);
internal sealed record MacroStmt(int Line, string Name, IReadOnlyList<MacroParameter> Parameters, IReadOnlyList<Stmt> Body) : Stmt(Line);
internal sealed record CallBlockStmt(int Line, CallExpr Call, IReadOnlyList<MacroParameter> Parameters, IReadOnlyList<Stmt> Body) : Stmt(Line);
internal sealed record FilterBlockStmt(int Line, IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Stmt> Body) : Stmt(Line);
internal sealed record WithStmt(int Line, IReadOnlyList<(Expr Target, Expr Value)> Assignments, IReadOnlyList<Stmt> Body) : Stmt(Line);
/// <summary>{% generation %} (transformers' extension for assistant masks) and any other body rendered as is.</summary>
internal sealed record ScopeStmt(int Line, IReadOnlyList<Stmt> Body) : Stmt(Line);
internal sealed record BreakStmt(int Line) : Stmt(Line);
internal sealed record ContinueStmt(int Line) : Stmt(Line);
