namespace Engine.Grammar;

/// <summary>The element kinds of llama.cpp's compiled grammar (llama_gretype): a rule is a flat run of elements,
/// alternatives separated by <see cref="Alt"/>, the rule closed by <see cref="End"/>. A character class is one
/// <see cref="Char"/>/<see cref="CharNot"/> followed by <see cref="CharAlt"/> and <see cref="CharRangeUpper"/> elements.</summary>
internal enum GrammarElementType : byte
{
    End,
    Alt,
    RuleRef,
    Char,
    CharNot,
    CharRangeUpper,
    CharAlt,
    CharAny,
}

/// <summary>One element: its kind and its value (a code point, or a rule id for <see cref="GrammarElementType.RuleRef"/>).</summary>
internal readonly record struct GrammarElement(GrammarElementType Type, uint Value)
{
    public bool IsEndOfSequence => Type is GrammarElementType.End or GrammarElementType.Alt;
}
