using System.Globalization;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover;

/// <summary>
/// Backend settings given explicitly: a cmdlet's parameters, an application's options. Every value left null falls back
/// to its environment variable, then to its default (see <see cref="BackendSettings"/>).
/// </summary>
public sealed record BackendOverrides
{
    private readonly string? _cloudApiKey;
    private readonly bool _cloudApiKeyGiven;

    /// <summary>OpenAI or Anthropic. Null: <c>CLOUD_PROVIDER</c>, else guessed from the cloud URL.</summary>
    public BackendKind? CloudProvider { get; init; }

    /// <summary>The cloud's chat URL. Null: <c>CLOUD_API_URL</c>, else the provider's public URL.</summary>
    public string? CloudUri { get; init; }

    /// <summary>The cloud model. Null: <c>CLOUD_MODEL</c>, else gpt-4o / claude-sonnet-4-5.</summary>
    public string? CloudModel { get; init; }

    /// <summary>
    /// The cloud API key. Not set: <c>CLOUD_API_KEY</c>, else no cloud (reason NotConfigured). Set, even to null or
    /// empty (a secret lookup that found nothing), it must hold a usable key: only an absent key means "no cloud".
    /// </summary>
    public string? CloudApiKey
    {
        get => _cloudApiKey;
        init
        {
            _cloudApiKey = value;
            _cloudApiKeyGiven = true;
        }
    }

    /// <summary>True when <see cref="CloudApiKey"/> was set (to anything, null included).</summary>
    public bool CloudApiKeyGiven => _cloudApiKeyGiven;

    /// <summary>The cloud attempt's whole budget. Null: <c>CLOUD_TIMEOUT</c> (seconds), else 15 seconds.</summary>
    public TimeSpan? CloudTimeout { get; init; }

    /// <summary>The Ollama servers in priority order. Null: <c>OLLAMA_URL</c> (comma-separated), else http://localhost:11434.</summary>
    public IReadOnlyList<string>? OllamaUris { get; init; }

    /// <summary>The Ollama model. Null: <c>OLLAMA_MODEL</c>, else llama3.1:8b.</summary>
    public string? OllamaModel { get; init; }

    /// <summary>Each Ollama attempt's whole budget. Null: <c>OLLAMA_TIMEOUT</c> (seconds), else 60 seconds.</summary>
    public TimeSpan? OllamaTimeout { get; init; }

    /// <summary>TCP connect, every backend. Null: <c>CONNECT_TIMEOUT</c> (seconds), else 3 seconds.</summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>Streaming: from sending to the first token, every backend. Null: <c>FIRST_TOKEN_TIMEOUT</c> (seconds), else 10 seconds for the cloud (at most its timeout) and the whole budget for Ollama.</summary>
    public TimeSpan? FirstTokenTimeout { get; init; }

    /// <summary>The request log. Null: <c>OLLAMACONTINUITY_LOG_PATH</c>, else the platform's default (resolved when a request is logged).</summary>
    public string? LogPath { get; init; }

    /// <summary>
    /// How error messages name an explicit setting, given its property name here (a cmdlet names its parameter:
    /// "OllamaUris" is -OllamaUri). The default value is null: the property name.
    /// </summary>
    public Func<string, string>? SettingName { get; init; }
}

/// <summary>
/// The one place where backend settings are resolved, for Invoke-AiRequest, Start-FailoverDrill, the gateway and the
/// IChatClient alike: an explicit value (<see cref="BackendOverrides"/>) wins over its environment variable, which wins
/// over the default. Everything is checked before any request is sent; a bad value throws
/// <see cref="ArgumentException"/> whose <see cref="ArgumentException.ParamName"/> is the error id
/// (<see cref="InvalidCloudUriId"/>, <see cref="InvalidOllamaUriId"/>, <see cref="InvalidTimeoutId"/>,
/// <see cref="ApiKeys.InvalidKeyId"/>) and whose message names the setting it came from, never the key.
/// </summary>
public static class BackendSettings
{
    public const string InvalidCloudUriId = "InvalidCloudUri";
    public const string InvalidOllamaUriId = "InvalidOllamaUri";
    public const string InvalidTimeoutId = "InvalidTimeout";

    public const string CloudProviderVariable = "CLOUD_PROVIDER";
    public const string CloudUriVariable = "CLOUD_API_URL";
    public const string CloudModelVariable = "CLOUD_MODEL";
    public const string CloudApiKeyVariable = "CLOUD_API_KEY";
    public const string CloudTimeoutVariable = "CLOUD_TIMEOUT";
    public const string OllamaUriVariable = "OLLAMA_URL";
    public const string OllamaModelVariable = "OLLAMA_MODEL";
    public const string OllamaTimeoutVariable = "OLLAMA_TIMEOUT";
    public const string ConnectTimeoutVariable = "CONNECT_TIMEOUT";
    public const string FirstTokenTimeoutVariable = "FIRST_TOKEN_TIMEOUT";

    /// <summary>The default cloud timeout (15 s), Ollama timeout (60 s), connect timeout (3 s) and cloud first-token timeout (10 s).</summary>
    public static readonly TimeSpan DefaultCloudTimeout = TimeSpan.FromSeconds(15), DefaultOllamaTimeout = TimeSpan.FromSeconds(60),
        DefaultConnectTimeout = TimeSpan.FromSeconds(3), DefaultCloudFirstTokenTimeout = TimeSpan.FromSeconds(10);

    private const double MaxTimeoutSeconds = 3600;
    private const double MaxConnectSeconds = 600;

    /// <summary>
    /// The plan for <paramref name="overrides"/> (null: none) over <paramref name="environment"/> (null: the process's
    /// environment variables) over the defaults.
    /// </summary>
    public static BackendPlan Resolve(BackendOverrides? overrides = null, Func<string, string?>? environment = null)
    {
        var o = overrides ?? new BackendOverrides();
        environment ??= Environment.GetEnvironmentVariable;
        string? Env(string name) => environment(name) is { Length: > 0 } v ? v.Trim() : null;
        string Named(string property) => o.SettingName?.Invoke(property) ?? property;

        var cloudUri = o.CloudUri ?? Env(CloudUriVariable) ?? BackendEndpoint.DefaultOpenAIUri;
        var kind = o.CloudProvider is { } cp && cp != BackendKind.Ollama ? cp
            : Env(CloudProviderVariable) is { } ep && Enum.TryParse<BackendKind>(ep, true, out var k) && k != BackendKind.Ollama ? k
            : BackendEndpoint.GuessCloudKind(cloudUri);
        if (o.CloudUri is null && Env(CloudUriVariable) is null && kind == BackendKind.Anthropic)
        {
            cloudUri = BackendEndpoint.DefaultAnthropicUri;
        }

        var cloudModel = o.CloudModel ?? Env(CloudModelVariable) ?? (kind == BackendKind.Anthropic ? BackendEndpoint.DefaultAnthropicModel : BackendEndpoint.DefaultOpenAIModel);
        var apiKey = o.CloudApiKeyGiven ? ApiKeys.Normalize(o.CloudApiKey, Named(nameof(o.CloudApiKey)))
            : Env(CloudApiKeyVariable) is not null ? ApiKeys.Normalize(environment(CloudApiKeyVariable), CloudApiKeyVariable)
            : null;

        var connect = Timeout(o.ConnectTimeout, Named(nameof(o.ConnectTimeout)), Env(ConnectTimeoutVariable), ConnectTimeoutVariable, DefaultConnectTimeout, MaxConnectSeconds);
        var firstToken = Timeout(o.FirstTokenTimeout, Named(nameof(o.FirstTokenTimeout)), Env(FirstTokenTimeoutVariable), FirstTokenTimeoutVariable, null, MaxTimeoutSeconds);
        var cloudTotal = Timeout(o.CloudTimeout, Named(nameof(o.CloudTimeout)), Env(CloudTimeoutVariable), CloudTimeoutVariable, DefaultCloudTimeout, MaxTimeoutSeconds)!.Value;
        var ollamaTotal = Timeout(o.OllamaTimeout, Named(nameof(o.OllamaTimeout)), Env(OllamaTimeoutVariable), OllamaTimeoutVariable, DefaultOllamaTimeout, MaxTimeoutSeconds)!.Value;
        var cloudTimeouts = new BackendTimeouts
        {
            Connect = connect!.Value, Total = cloudTotal, FirstToken = firstToken ?? (DefaultCloudFirstTokenTimeout < cloudTotal ? DefaultCloudFirstTokenTimeout : cloudTotal),
        };
        var ollamaTimeouts = new BackendTimeouts { Connect = connect.Value, Total = ollamaTotal, FirstToken = firstToken };

        BackendEndpoint cloud;
        try
        {
            cloud = BackendEndpoint.Cloud(kind, cloudUri, cloudModel, apiKey, cloudTimeouts);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException(e.Message + " (from " + (o.CloudUri is null ? CloudUriVariable : Named(nameof(o.CloudUri))) + ")", InvalidCloudUriId);
        }

        var ollamaSource = o.OllamaUris is null ? OllamaUriVariable : Named(nameof(o.OllamaUris));
        var ollamaModel = o.OllamaModel ?? Env(OllamaModelVariable) ?? BackendEndpoint.DefaultOllamaModel;
        var ollamaUris = o.OllamaUris
            ?? Env(OllamaUriVariable)?.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            ?? [BackendEndpoint.DefaultOllamaUri];
        if (ollamaUris.Count == 0)
        {
            throw new ArgumentException($"{ollamaSource} names no Ollama server: give at least one URL (http://host:11434).", InvalidOllamaUriId);
        }

        var ollama = new List<BackendEndpoint>(ollamaUris.Count);
        foreach (var u in ollamaUris)
        {
            try
            {
                ollama.Add(BackendEndpoint.Ollama(u ?? "", ollamaModel, ollamaTimeouts));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException(e.Message + " (from " + ollamaSource + ")", InvalidOllamaUriId);
            }
        }

        return new BackendPlan(cloud, ollama) { LogPath = o.LogPath };
    }

    private static TimeSpan? Timeout(TimeSpan? given, string givenName, string? variable, string variableName, TimeSpan? fallback, double maxSeconds)
    {
        if (given is { } g)
        {
            return g > TimeSpan.Zero && g.TotalSeconds <= maxSeconds
                ? g
                : throw new ArgumentException($"{givenName} ({g.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s) is not a number of seconds between 0 and {maxSeconds.ToString(CultureInfo.InvariantCulture)}.", InvalidTimeoutId);
        }

        if (variable is not null)
        {
            return double.TryParse(variable, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s <= maxSeconds
                ? TimeSpan.FromSeconds(s)
                : throw new ArgumentException($"The environment variable {variableName} ('{variable}') is not a number of seconds between 0 and {maxSeconds.ToString(CultureInfo.InvariantCulture)}.", InvalidTimeoutId);
        }

        return fallback;
    }
}
