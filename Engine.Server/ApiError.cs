namespace Engine.Server;

/// <summary>A request the server refuses: the HTTP status and what to tell the client. The OpenAI routes answer it
/// as <c>{"error":{"message","type","param","code"}}</c>, the Ollama routes as <c>{"error":"message"}</c>.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for the status.</summary>
    public string Type => Status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "invalid_request_error",
        429 or 503 => "server_busy_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static ApiError BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);
    public static ApiError NotFound(string message, string? param = null) => new(404, message, param, "model_not_found");
}
