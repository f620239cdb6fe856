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

    /// <summary>
    /// Asks every server at once and waits at most <see cref="Timeout"/> in all (a refused connection can take
    /// seconds on Windows); the first server in priority order that answered wins.
    /// </summary>
    internal static IReadOnlyList<string> ModelsOf(IReadOnlyList<Uri> servers)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var tasks = servers.Select(s => TagsAsync(s, cts.Token)).ToArray();
        try
        {
            while (true)
            {
                // Done as soon as every server before the first answer has failed: no need to wait for the rest.
                foreach (var t in tasks)
                {
                    if (!t.IsCompleted)
                    {
                        break;
                    }

                    if (t.Result is { } models)
                    {
                        return models;
                    }
                }

                var pending = tasks.Where(t => !t.IsCompleted).ToArray();
                var left = Timeout - clock.Elapsed;
                if (pending.Length == 0 || left <= TimeSpan.Zero)
                {
                    break;
                }

                Task.WaitAny(pending, left);
            }

            return tasks.Select(t => t.IsCompletedSuccessfully ? t.Result : null).FirstOrDefault(m => m is not null) ?? [];
        }
        finally
        {
            cts.Cancel();
        }
    }

    private static async Task<IReadOnlyList<string>?> TagsAsync(Uri server, CancellationToken cancellationToken)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server, "api/tags"));
            using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var doc = await JsonDocument.ParseAsync(body, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("models", out var models) || models.ValueKind != JsonValueKind.Array)
            {
                return null;
            }

            return models.EnumerateArray()
                .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null)
                .OfType<string>()
                .Distinct(StringComparer.Ordinal)
                .Order(StringComparer.OrdinalIgnoreCase)
                .ToArray();
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or IOException)
        {
            return null;
        }
    }
}
