using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover;

/// <summary>One backend: where it is, how it speaks, which model, and its timeouts. Its key never leaves it.</summary>
public sealed class BackendEndpoint
{
    public const string DefaultOpenAIUri = "https://api.openai.com/v1/chat/completions";
    public const string DefaultAnthropicUri = "https://api.anthropic.com/v1/messages";
    public const string DefaultOpenAIModel = "gpt-4o";
    public const string DefaultAnthropicModel = "claude-sonnet-4-5";
    public const string DefaultOllamaUri = "http://localhost:11434/api/chat";
    public const string DefaultOllamaModel = "llama3.1:8b";

    private BackendEndpoint(BackendRole role, BackendKind kind, Uri uri, string model, string? apiKey, BackendTimeouts timeouts)
    {
        Role = role;
        Kind = kind;
        Uri = uri;
        Model = model;
        ApiKey = apiKey;
        Timeouts = timeouts;
        Display = Redact.Endpoint(uri);
        CircuitKey = $"{uri.Scheme}://{uri.IdnHost}:{uri.Port}{uri.AbsolutePath}".ToLowerInvariant();
    }

    public BackendRole Role { get; }
    public BackendKind Kind { get; }
    public Uri Uri { get; }
    public string Model { get; }
    public BackendTimeouts Timeouts { get; }

    /// <summary>scheme://host:port/path, safe to print.</summary>
    public string Display { get; }

    /// <summary>The identity of the circuit: scheme, host, port and path. Two cloud URLs never share a breaker.</summary>
    public string CircuitKey { get; }

    internal string? ApiKey { get; }

    internal bool HasApiKey => !string.IsNullOrEmpty(ApiKey);

    /// <summary>The same endpoint with other timeouts (a retry gets what is left of the budget).</summary>
    internal BackendEndpoint WithTimeouts(BackendTimeouts timeouts) => new(Role, Kind, Uri, Model, ApiKey, timeouts);

    public static BackendEndpoint Cloud(BackendKind kind, string uri, string model, string? apiKey, BackendTimeouts? timeouts = null)
    {
        if (kind == BackendKind.Ollama)
        {
            throw new ArgumentException("A cloud backend speaks OpenAI or Anthropic.", nameof(kind));
        }

        // No key: Ollama only. A key is checked before anything is sent with it (CR/LF would split the request).
        var key = string.IsNullOrEmpty(apiKey) ? null : ApiKeys.Normalize(apiKey, "the cloud API key");
        return new(BackendRole.Cloud, kind, ParseHttpUri(uri, "cloud"), RequireModel(model), key, timeouts ?? BackendTimeouts.CloudDefault);
    }

    /// <summary>An Ollama server by base URL (<c>http://host:11434</c>), bare <c>host:port</c>, or the full <c>/api/chat</c> URL.</summary>
    public static BackendEndpoint Ollama(string uri, string model, BackendTimeouts? timeouts = null)
    {
        var parsed = ParseHttpUri(uri.Contains("://", StringComparison.Ordinal) ? uri : "http://" + uri, "Ollama");
        var path = parsed.AbsolutePath.TrimEnd('/');
        if (!path.EndsWith("/api/chat", StringComparison.OrdinalIgnoreCase))
        {
            parsed = new UriBuilder(parsed) { Path = path + "/api/chat" }.Uri;
        }

        return new(BackendRole.Ollama, BackendKind.Ollama, parsed, RequireModel(model), null, timeouts ?? BackendTimeouts.OllamaDefault);
    }

    /// <summary>Guesses the provider from a cloud URL: Anthropic for anthropic.com hosts or a <c>/v1/messages</c> path, else OpenAI.</summary>
    public static BackendKind GuessCloudKind(string uri) =>
        uri.Contains("anthropic.com", StringComparison.OrdinalIgnoreCase) || uri.TrimEnd('/').EndsWith("/v1/messages", StringComparison.OrdinalIgnoreCase)
            ? BackendKind.Anthropic
            : BackendKind.OpenAI;

    public override string ToString() => $"{Role} {Display} ({Model})";

    private static Uri ParseHttpUri(string value, string what)
    {
        if (!Uri.TryCreate(value?.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"The {what} URI '{SafeForMessage(value)}' is not an absolute http:// or https:// URL.");
        }

        return uri;
    }

    private static string RequireModel(string model) =>
        string.IsNullOrWhiteSpace(model) ? throw new ArgumentException("A model name is required.") : model.Trim();

    private static string SafeForMessage(string? value)
    {
        if (value is null)
        {
            return "";
        }

        // Show the URL the way the user wrote it, minus anything after '?' (query keys) and any user info.
        var q = value.IndexOf('?', StringComparison.Ordinal);
        var s = q >= 0 ? value[..q] + "?***" : value;
        var at = s.IndexOf('@', StringComparison.Ordinal);
        var scheme = s.IndexOf("://", StringComparison.Ordinal);
        return at > 0 && scheme >= 0 && at > scheme ? s[..(scheme + 3)] + "***@" + s[(at + 1)..] : s;
    }
}
