namespace OllamaContinuity.Exposure;

/// <summary>Whether a host firewall restricts who may reach the port. <see cref="Restricted"/> null means undetermined.</summary>
public sealed record FirewallStatus(bool? Restricted, string Detail)
{
    /// <summary>The backend that answered (ufw, firewalld, nftables, iptables, WindowsFirewall, Pf), when known.</summary>
    public string? Backend { get; init; }

    /// <summary>The sources allowed to reach the port, when known.</summary>
    public IReadOnlyList<string> AllowFrom { get; init; } = [];

    public static FirewallStatus Unknown(string why) => new(null, why);
}

/// <summary>
/// The audit's view of the host firewall. The firewall feature (Get-OllamaFirewallRule's engine) implements it;
/// until it is wired in, <see cref="UndeterminedFirewallStatusProvider"/> reports that it could not be determined.
/// </summary>
public interface IFirewallStatusProvider
{
    Task<FirewallStatus> GetStatusAsync(int port, CancellationToken cancellationToken);
}

/// <summary>The default: nothing to ask, so the firewall check is a Warn, never a guessed Pass.</summary>
public sealed class UndeterminedFirewallStatusProvider : IFirewallStatusProvider
{
    public static UndeterminedFirewallStatusProvider Instance { get; } = new();

    public Task<FirewallStatus> GetStatusAsync(int port, CancellationToken cancellationToken) =>
        Task.FromResult(FirewallStatus.Unknown("could not be determined: no firewall reader is available to the audit"));
}

/// <summary>Adapts any function (for example a call into the firewall engine) to <see cref="IFirewallStatusProvider"/>.</summary>
public sealed class DelegateFirewallStatusProvider(Func<int, CancellationToken, Task<FirewallStatus>> get) : IFirewallStatusProvider
{
    public Task<FirewallStatus> GetStatusAsync(int port, CancellationToken cancellationToken) => get(port, cancellationToken);
}

/// <summary>
/// The firewall reader Test-OllamaExposure uses when one is set (tests). The default value is
/// <see cref="UndeterminedFirewallStatusProvider"/>, which makes a live audit use
/// <see cref="Firewall.FirewallStatusReader"/> (Get-OllamaFirewallRule's engine) and an offline (-Root) audit report
/// "could not be determined".
/// </summary>
public static class ExposureAuditDefaults
{
    private static IFirewallStatusProvider s_firewall = UndeterminedFirewallStatusProvider.Instance;

    public static IFirewallStatusProvider FirewallStatusProvider
    {
        get => Volatile.Read(ref s_firewall);
        set => Volatile.Write(ref s_firewall, value ?? UndeterminedFirewallStatusProvider.Instance);
    }
}
