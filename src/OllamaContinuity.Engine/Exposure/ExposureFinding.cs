namespace OllamaContinuity.Exposure;

/// <summary>
/// A finding's status. Strings, not an enum, so that ConvertTo-Json, Export-Csv and ConvertTo-Html all show
/// "Fail" rather than a number.
/// </summary>
public static class ExposureStatus
{
    public const string Pass = "Pass";
    public const string Fail = "Fail";
    public const string Warn = "Warn";
    public const string NotApplicable = "NotApplicable";
    public const string Error = "Error";
}

/// <summary>
/// One checklist item for one target. Every property is flat (strings and numbers), so findings go straight into
/// Export-Csv, ConvertTo-Html and ConvertTo-Json.
/// </summary>
public sealed record ExposureFinding
{
    /// <summary>The checklist item: BindAddress, Firewall, Origins, WebUI, ServiceUser, Authentication, Logs, DiskEncryption; GatewayBind, GatewayAuth and GatewayFirewall when an OllamaContinuity gateway runs on the host; or NetworkExposure for the network probe.</summary>
    public required string Check { get; init; }

    /// <summary>Pass, Fail, Warn, NotApplicable or Error (<see cref="ExposureStatus"/>).</summary>
    public required string Status { get; init; }

    /// <summary>What was checked: this machine's name (or the -Root path) for the local audit, so reports from several hosts can be combined, the IP address for the network probe.</summary>
    public required string Target { get; init; }

    public required string Detail { get; init; }

    /// <summary>The exact cmdlet call that fixes it (empty when nothing needs fixing).</summary>
    public string Remediation { get; init; } = "";

    /// <summary>The TCP port concerned (0 when the check is not about a port).</summary>
    public int Port { get; init; }

    /// <summary>The name the target was given as (host name or CIDR), when it differs from <see cref="Target"/>.</summary>
    public string HostName { get; init; } = "";

    /// <summary>The Ollama version the server reported (network probe), or empty.</summary>
    public string Version { get; init; } = "";

    /// <summary>Model names the server lists to anyone (comma-separated), or empty.</summary>
    public string Models { get; init; } = "";

    public int ModelCount { get; init; }

    public DateTimeOffset Timestamp { get; init; }

    public override string ToString() => $"[{Status}] {Check} {Target}{(Port > 0 && !Target.Contains(':') ? ":" + Port : "")}: {Detail}";
}

/// <summary>The checklist item names, as they appear in <see cref="ExposureFinding.Check"/>.</summary>
public static class ExposureChecks
{
    public const string BindAddress = "BindAddress";
    public const string Firewall = "Firewall";
    public const string Origins = "Origins";
    public const string WebUI = "WebUI";
    public const string ServiceUser = "ServiceUser";
    public const string Authentication = "Authentication";
    public const string Logs = "Logs";
    public const string DiskEncryption = "DiskEncryption";
    public const string NetworkExposure = "NetworkExposure";

    /// <summary>The OllamaContinuity gateway's bind address (local audit, one row per gateway found).</summary>
    public const string GatewayBind = "GatewayBind";

    /// <summary>Whether the gateway asks for a client token (a request without one must get 401).</summary>
    public const string GatewayAuth = "GatewayAuth";

    /// <summary>Whether a firewall rule restricts the gateway's port when it listens beyond loopback.</summary>
    public const string GatewayFirewall = "GatewayFirewall";
}
