using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>
/// The backends from the environment, resolved by the engine exactly as for Invoke-AiRequest
/// (<see cref="Failover.BackendSettings"/>: CLOUD_*, OLLAMA_*, CONNECT_TIMEOUT, FIRST_TOKEN_TIMEOUT, the same checks
/// and error ids): the gateway holds the cloud key; applications never see it.
/// </summary>
internal static class BackendSettings
{
    public static BackendPlan FromEnvironment(Func<string, string?> env, string? logPath) =>
        Failover.BackendSettings.Resolve(new BackendOverrides { LogPath = logPath }, env);
}
