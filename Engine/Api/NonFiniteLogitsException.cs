namespace Engine;

/// <summary>
/// The model produced a NaN or +infinity logit (checklist F13): the request must end with an error
/// rather than emit a token picked from garbage. -infinity is allowed (it means "masked out").
/// </summary>
public sealed class NonFiniteLogitsException : InvalidOperationException
{
    /// <summary>The first offending vocabulary index.</summary>
    public int TokenId { get; }

    /// <summary>The offending value (NaN or +infinity).</summary>
    public float Value { get; }

    public NonFiniteLogitsException(int tokenId, float value)
        : this(tokenId, value, $"logit of token {tokenId} is {value}; the model produced non-finite output (NaN/+inf), refusing to sample") { }

    public NonFiniteLogitsException(int tokenId, float value, string message) : base(message)
    {
        TokenId = tokenId;
        Value = value;
    }
}
