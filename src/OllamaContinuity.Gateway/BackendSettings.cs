using System.Globalization;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>
/// The backends from the environment, read the way Invoke-AiRequest reads them (CLOUD_*, OLLAMA_*): the gateway
/// holds the cloud key; applications never see it.
/// </summary>
internal static class BackendSettings
{
    public static BackendPlan FromEnvironment(Func<string, string?> env, string? logPath)
    {
        string? Env(string name) => env(name) is { Length: > 0 } v ? v.Trim() : null;
        var cloudUri = Env("CLOUD_API_URL") ?? BackendEndpoint.DefaultOpenAIUri;
        var kind = Env("CLOUD_PROVIDER") is { } ep && Enum.TryParse<BackendKind>(ep, true, out var k) && k != BackendKind.Ollama ? k : BackendEndpoint.GuessCloudKind(cloudUri);
        if (Env("CLOUD_API_URL") is null && kind == BackendKind.Anthropic)
        {
            cloudUri = BackendEndpoint.DefaultAnthropicUri;
        }

        var cloudModel = Env("CLOUD_MODEL") ?? (kind == BackendKind.Anthropic ? BackendEndpoint.DefaultAnthropicModel : BackendEndpoint.DefaultOpenAIModel);
        var connect = Seconds(Env("CONNECT_TIMEOUT"), "CONNECT_TIMEOUT", 3);
        var firstToken = Env("FIRST_TOKEN_TIMEOUT") is { } ft ? Seconds(ft, "FIRST_TOKEN_TIMEOUT", 10) : (TimeSpan?)null;
        var cloudTotal = Seconds(Env("CLOUD_TIMEOUT"), "CLOUD_TIMEOUT", 15);
        var ollamaTotal = Seconds(Env("OLLAMA_TIMEOUT"), "OLLAMA_TIMEOUT", 60);
        var cloud = BackendEndpoint.Cloud(kind, cloudUri, cloudModel, Env("CLOUD_API_KEY"),
            new BackendTimeouts { Connect = connect, Total = cloudTotal, FirstToken = firstToken ?? (cloudTotal < TimeSpan.FromSeconds(10) ? cloudTotal : TimeSpan.FromSeconds(10)) });
        var ollamaModel = Env("OLLAMA_MODEL") ?? BackendEndpoint.DefaultOllamaModel;
        var ollamaTimeouts = new BackendTimeouts { Connect = connect, Total = ollamaTotal, FirstToken = firstToken };
        var ollama = (Env("OLLAMA_URL")?.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [BackendEndpoint.DefaultOllamaUri])
            .Select(u => BackendEndpoint.Ollama(u, ollamaModel, ollamaTimeouts))
            .ToArray();
        return new BackendPlan(cloud, ollama) { LogPath = logPath };
    }

    private static TimeSpan Seconds(string? value, string name, double fallback)
    {
        if (value is null)
        {
            return TimeSpan.FromSeconds(fallback);
        }

        return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s <= 3600
            ? TimeSpan.FromSeconds(s)
            : throw new ArgumentException($"The environment variable {name} ('{value}') is not a number of seconds between 0 and 3600.");
    }
}
