using OllamaContinuity.Exposure;

namespace OllamaContinuity.Firewall;

/// <summary>
/// The exposure audit's view of the firewall, read with the same engine as Get-OllamaFirewallRule: the detected
/// (or named) backend's own state for the port. Restricted is true only when the module's rule is in force; an
/// absent rule is "not restricted by this module" (false), and a firewall that cannot be read is undetermined (null).
/// Not installed as <see cref="ExposureAuditDefaults.FirewallStatusProvider"/> by itself: reading runs the firewall
/// tools, which tests must never do on their host.
/// </summary>
public sealed class FirewallStatusReader(FirewallEnvironment? environment = null, FirewallBackendKind backend = FirewallBackendKind.Auto) : IFirewallStatusProvider
{
    public async Task<FirewallStatus> GetStatusAsync(int port, CancellationToken cancellationToken)
    {
        var manager = new FirewallManager(environment ?? FirewallEnvironment.Default);
        try
        {
            FirewallDetection? detected = backend == FirewallBackendKind.Auto ? await manager.DetectWithReasonAsync(cancellationToken).ConfigureAwait(false) : null;
            var b = manager.Create(detected?.Kind ?? backend);
            var info = await manager.GetAsync(b, port, cancellationToken).ConfigureAwait(false);
            var detail = (info.Active
                ? $"{info.Backend} allows TCP {port} only from {string.Join(", ", info.AllowFrom)} and loopback (Set-OllamaFirewallRule)"
                : info.Present
                    ? $"{info.Backend} has the module's rule for TCP {port}, but it is not in force: {string.Join(" ", info.Warnings)}"
                    : $"{info.Backend} has no rule of this module for TCP {port} (Set-OllamaFirewallRule adds one)")
                + (detected is null ? $" [named with -FirewallBackend {backend}]" : $" [detected: {detected.Reason}]");
            return new FirewallStatus(info.Active, detail) { Backend = info.Backend.ToString(), AllowFrom = info.AllowFrom };
        }
        catch (Exception e) when (e is FirewallBackendNotFoundException or FirewallInputException)
        {
            return FirewallStatus.Unknown("could not be determined: " + e.Message);
        }
    }
}
