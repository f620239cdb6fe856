using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Text.Json;

namespace OllamaContinuity.Internal;

/// <summary>
/// Tab completion for <c>-OllamaModel</c>: the models the configured Ollama has pulled (<c>GET /api/tags</c>), from
/// the first of <c>-OllamaUri</c> (when typed), OLLAMA_URL or http://localhost:11434 that answers within
/// <see cref="Timeout"/>. An Ollama that is down completes nothing rather than freezing the prompt.
/// </summary>
public sealed class OllamaModelCompleter : IArgumentCompleter
{
    /// <summary>The time allowed for all the servers together (connect and answer). The default value is 1 second.</summary>
    internal static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);

    private static readonly HttpClient Client = new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(1), UseCookies = false })
    {
        Timeout = System.Threading.Timeout.InfiniteTimeSpan,
    };

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var (prefix, quote) = CompletionText.Unquote(wordToComplete);
        return ModelsOf(ServersOf(fakeBoundParameters))
            .Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(CompletionText.Quote(n, quote), n, CompletionResultType.ParameterValue, n));
    }

    /// <summary>The Ollama base URIs in priority order: -OllamaUri, else OLLAMA_URL, else the default.</summary>
    internal static IReadOnlyList<Uri> ServersOf(IDictionary? bound)
    {
        IEnumerable<string> raw;
        if (bound is not null && bound.Contains("OllamaUri") && bound["OllamaUri"] is { } typed)
        {
            var value = typed is PSObject o ? o.BaseObject : typed;
            raw = value is IEnumerable e and not string ? e.Cast<object?>().Select(x => (x is PSObject p ? p.BaseObject : x)?.ToString() ?? "") : [value.ToString() ?? ""];
        }
        else if (Environment.GetEnvironmentVariable("OLLAMA_URL") is { Length: > 0 } env)
        {
            raw = env.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        else
        {
            raw = ["http://localhost:11434"];
        }

        var list = new List<Uri>();
        foreach (var r in raw)
        {
            if (Uri.TryCreate(r.Contains("://", StringComparison.Ordinal) ? r : "http://" + r, UriKind.Absolute, out var u) && u.Scheme is "http" or "https")
            {
                // http://host:11434/api/chat and http://host:11434/ are the same server.
                var path = u.AbsolutePath;
                var api = path.IndexOf("/api/", StringComparison.OrdinalIgnoreCase);
                var basePath = (api >= 0 ? path[..api] : path).TrimEnd('/') + "/";
                list.Add(new Uri(u.GetLeftPart(UriPartial.Authority) + basePath));
            }
        }

        return list;
    }

    internal static IReadOnlyList<string> ModelsOf(IReadOnlyList<Uri> servers)
    {
        using var cts = new CancellationTokenSource(Timeout);
        foreach (var server in servers)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server, "api/tags"));
                using var response = Client.Send(request, HttpCompletionOption.ResponseContentRead, cts.Token);
                if (!response.IsSuccessStatusCode)
                {
                    continue;
                }

                using var doc = JsonDocument.Parse(response.Content.ReadAsStream(cts.Token));
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("models", out var models) && models.ValueKind == JsonValueKind.Array)
                {
                    return models.EnumerateArray()
                        .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null)
                        .OfType<string>()
                        .Distinct(StringComparer.Ordinal)
                        .Order(StringComparer.OrdinalIgnoreCase)
                        .ToArray();
                }
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or IOException)
            {
                if (cts.IsCancellationRequested)
                {
                    break;
                }
            }
        }

        return [];
    }
}
