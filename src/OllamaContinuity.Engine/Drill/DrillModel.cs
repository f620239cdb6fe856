using System.Text.Json.Serialization;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Native;

namespace OllamaContinuity.Drill;

/// <summary>How a drill cuts the cloud off.</summary>
public enum DrillBlockMethod
{
    /// <summary>Inside the module only: this process's HTTP pool refuses the cloud endpoint like a refused connection. Touches no firewall.</summary>
    Simulated,
    /// <summary>The host firewall blocks outbound TCP to the cloud endpoint's resolved addresses (needs root or an administrator). Affects every process of the host, the gateway included.</summary>
    Firewall,
    /// <summary>
    /// The drill's own workflow is put under contingency in a shared state file (the Machine scope when the drill runs
    /// as root or an administrator, else the User scope), which every process reads on its next request, the
    /// gateway included: requests of that workflow skip the cloud and are served by Ollama; other workflows are
    /// untouched. Needs no privilege. It proves the routing (Enable-AiContingency taking effect, Ollama serving),
    /// not the detection of an outage: no connection fails, no circuit opens. The entry expires on its own if the
    /// drill dies.
    /// </summary>
    Contingency,
}

/// <summary>The path a drill probe took: the module's engine in this process, or an HTTP request through the local gateway.</summary>
public static class DrillPath
{
    public const string InProcess = "InProcess";
    public const string Gateway = "Gateway";
}

/// <summary>
/// The local failover gateway a drill sends probes through (Start-FailoverDrill -Gateway): its address and a client
/// token. The token is never printed: <see cref="ToString"/> shows the address only.
/// </summary>
public sealed class DrillGateway
{
    public DrillGateway(Uri uri, string token)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentException.ThrowIfNullOrEmpty(token);
        Uri = uri;
        Token = token;
    }

    /// <summary>The gateway's base address (http://127.0.0.1:11435).</summary>
    public Uri Uri { get; }

    /// <summary>The client token sent as 'Authorization: Bearer'.</summary>
    internal string Token { get; }

    /// <summary>The model name asked for. The default value is 'ollamacontinuity' (the gateway's alias for its route).</summary>
    public string Model { get; init; } = "ollamacontinuity";

    /// <summary>How long one probe through the gateway may take (the gateway's cloud and Ollama timeouts together). The default value is 120 seconds.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Creates the sockets of the drill's connections to the gateway (tests: inside a network namespace). The default value is null: ordinary sockets.</summary>
    public Func<System.Net.Sockets.Socket>? SocketFactory { get; init; }

    public override string ToString() => Uri.IsAbsoluteUri ? Uri.GetLeftPart(UriPartial.Authority) : Uri.OriginalString;
}

/// <summary>One probe of the drill's workload: a prompt, or a delegate that runs the team's own workflow.</summary>
public sealed record DrillProbe(string Name)
{
    /// <summary>The prompt sent through the drill's plan (with the drill's workflow name).</summary>
    public string? Prompt { get; init; }

    /// <summary>Runs the team's workflow and returns the responses it produced (Start-FailoverDrill -Probe { ... }).</summary>
    public Func<CancellationToken, Task<IReadOnlyList<AiResponse>>>? Run { get; init; }

    /// <summary>This probe's quality check (text in, verdict out); null: the drill's default.</summary>
    public Func<string, bool>? Quality { get; init; }
}

/// <summary>Settings of one drill.</summary>
public sealed record DrillOptions
{
    public required BackendPlan Plan { get; init; }

    /// <summary>The default value is <see cref="DrillBlockMethod.Simulated"/>.</summary>
    public DrillBlockMethod BlockMethod { get; init; } = DrillBlockMethod.Simulated;

    /// <summary>How long the cloud stays blocked. The default value is 15 minutes (the seed's drill).</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>The gap between two rounds of probes. The default value is 10 seconds (the circuit opens after 3 failures within 30 seconds).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The workload. The default value is one prompt probe, <see cref="DefaultPrompt"/>.</summary>
    public IReadOnlyList<DrillProbe> Probes { get; init; } = [new DrillProbe("default") { Prompt = DefaultPrompt }];

    public const string DefaultPrompt = "This is a failover drill. Reply with one short sentence confirming you are available.";

    /// <summary>The quality check for probes without their own. The default value is null: a non-empty answer (within the Ollama timeout, which the engine enforces).</summary>
    public Func<string, bool>? QualityCheck { get; init; }

    /// <summary>The workflow name of the drill's own requests (request log, contingency log). The default value is 'FailoverDrill'.</summary>
    public string Workflow { get; init; } = "FailoverDrill";

    /// <summary>How long to wait for the cloud to serve again after the block is removed. The default value is 5 minutes.</summary>
    public TimeSpan RecoveryTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long to wait for the alert's delivery. The default value is 30 seconds.</summary>
    public TimeSpan AlertTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Check that the outage alert was delivered. The default value is true.</summary>
    public bool CheckAlert { get; init; } = true;

    /// <summary>Runs the firewall tools. The default value is <see cref="ProcessCommandRunner.Default"/>.</summary>
    public ICommandRunner Runner { get; init; } = ProcessCommandRunner.Default;

    /// <summary>The firewall for -BlockMethod Firewall. The default value is null: detected (<see cref="OutboundBlocker.Detect"/>).</summary>
    public OutboundFirewall? Firewall { get; init; }

    private string? _markerPath;

    /// <summary>
    /// The marker file of an active block. The default value is <see cref="DrillMarkerPaths.ForNewDrill"/>: the
    /// machine-wide state directory when this process is root or an administrator (so every administrator's
    /// Stop-FailoverDrill finds it), else the user's. Chosen when first read, so -WhatIf creates nothing.
    /// </summary>
    public string MarkerPath
    {
        get => _markerPath ??= DrillMarkerPaths.ForNewDrill();
        init => _markerPath = value;
    }

    /// <summary>
    /// Receives the drill's story as it happens, one line per event: each step starting and ending (with its outcome
    /// and detail), each probe's result. Called from the drill's own thread. The default value is null.
    /// </summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// Also probe through this gateway (every prompt probe goes both ways: in this process and through the gateway),
    /// preflight its health and token, and wait for it to serve from the cloud again after the block. The default
    /// value is null: in-process probes only. Needs a block the gateway's process sees (Firewall or Contingency).
    /// </summary>
    public DrillGateway? Gateway { get; init; }

    /// <summary>The contingency state a <see cref="DrillBlockMethod.Contingency"/> block is written to. The default value is <see cref="ContingencyService.Default"/> (the one every process reads).</summary>
    public ContingencyService Contingency { get; init; } = ContingencyService.Default;

    private ContinuityScope? _contingencyScope;

    /// <summary>The scope of a <see cref="DrillBlockMethod.Contingency"/> block. The default value is Machine when this process is root or an administrator (a gateway running as a service reads it), else User.</summary>
    public ContinuityScope ContingencyScope
    {
        get => _contingencyScope ?? (Environment.IsPrivilegedProcess ? ContinuityScope.Machine : ContinuityScope.User);
        init => _contingencyScope = value;
    }
}

/// <summary>Where the drill is, for the progress bar.</summary>
public sealed record DrillProgress(string Phase, string Status, int PercentComplete, int SecondsRemaining);

/// <summary>One step of the drill and how it went.</summary>
public sealed class DrillStep
{
    public required string Name { get; init; }
    /// <summary>Passed, Failed, Skipped or Warning.</summary>
    public required string Outcome { get; set; }
    public DateTimeOffset StartedAt { get; init; }
    public double DurationSeconds { get; set; }
    public string Detail { get; set; } = "";

    /// <summary>The drill's story line callback (<see cref="DrillOptions.Log"/>).</summary>
    internal Action<string>? Log { get; init; }

    public override string ToString() => $"{Name}: {Outcome}";
}

/// <summary>One probe request of the drill.</summary>
public sealed class DrillProbeResult
{
    public int Sequence { get; init; }
    public required string Probe { get; init; }
    /// <summary>The path the probe took: InProcess (this process's engine) or Gateway (an HTTP request through the local gateway).</summary>
    public string Path { get; init; } = DrillPath.InProcess;
    /// <summary>Preflight, Failover or Recovery.</summary>
    public required string Phase { get; init; }
    public DateTimeOffset Timestamp { get; init; }
    public string? Backend { get; init; }
    public string? FailoverReason { get; init; }
    /// <summary>The failover line ("Cloud unavailable, falling back to Ollama") was logged for it.</summary>
    public bool FailoverLineLogged { get; init; }
    public bool QualityPassed { get; init; }
    public bool Passed { get; init; }
    public double LatencyMs { get; init; }
    public string? Error { get; init; }
    /// <summary>The start of the answer (200 characters at most).</summary>
    public string? Answer { get; init; }
    /// <summary>The request's id (through the gateway: its X-OllamaContinuity-Request-Id, the key of its request log line).</summary>
    public string? RequestId { get; init; }

    public override string ToString() =>
        $"#{Sequence} {Phase} {Path} {Probe} {Backend ?? "none"} {LatencyMs:0}ms {(Passed ? "Passed" : "Failed")}";
}

/// <summary>The drill's record: every step, every probe, the timings and the alerts; what -ReportPath writes.</summary>
public sealed class DrillReport
{
    public string DrillId { get; init; } = Guid.NewGuid().ToString("n")[..12];
    public string Host { get; init; } = Environment.MachineName;
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset EndedAt { get; set; }
    /// <summary>Passed, Failed, NotStarted (preflight failed) or Aborted (cancelled).</summary>
    public string Outcome { get; set; } = "Failed";
    public DrillBlockMethod BlockMethod { get; init; }
    public string? Firewall { get; set; }
    public required string CloudEndpoint { get; init; }
    public ItemList<string> OllamaEndpoints { get; init; } = [];
    public ItemList<string> BlockedAddresses { get; set; } = [];
    public double PlannedDurationSeconds { get; init; }
    public double IntervalSeconds { get; init; }
    /// <summary>From the block to the first probe served by Ollama with the failover line.</summary>
    public double? TimeToFailoverSeconds { get; set; }
    /// <summary>From removing the block to the first probe served by the cloud again.</summary>
    public double? TimeToRecoverSeconds { get; set; }
    /// <summary>The gateway the drill also probed through (its address), or null.</summary>
    public string? Gateway { get; init; }
    /// <summary>From the block to the first gateway probe served by Ollama with a failover reason (null without -Gateway).</summary>
    public double? GatewayTimeToFailoverSeconds { get; set; }
    /// <summary>From removing the block to the first gateway probe served by the cloud again (null without -Gateway).</summary>
    public double? GatewayTimeToRecoverSeconds { get; set; }
    public int ProbesPassed => Probes.Count(p => p.Phase == "Failover" && p.Passed);
    public int ProbesFailed => Probes.Count(p => p.Phase == "Failover" && !p.Passed);
    public ItemList<DrillStep> Steps { get; } = [];
    public ItemList<DrillProbeResult> Probes { get; } = [];
    public ItemList<AlertDelivery> Alerts { get; } = [];
    public string? ReportPath { get; set; }

    /// <summary>The drill's story line callback (<see cref="DrillOptions.Log"/>).</summary>
    internal Action<string>? Log { get; init; }

    [JsonIgnore]
    public ItemList<string> Failures => new(Steps.Where(s => s.Outcome == "Failed").Select(s => $"{s.Name}: {s.Detail}"));
}

/// <summary>What -WhatIf shows: the steps, the addresses and the exact firewall commands.</summary>
public sealed record DrillPlan(string CloudEndpoint, IReadOnlyList<string> Addresses, string? Firewall, IReadOnlyList<CommandInvocation> Apply, IReadOnlyList<CommandInvocation> Remove)
{
    /// <summary>Set for a contingency block: what is written, where (the method's description).</summary>
    public string? Contingency { get; init; }

    /// <summary>The gateway probed as well, or null.</summary>
    public string? Gateway { get; init; }

    public override string ToString() => What() + (Gateway is null ? "" : $"; probes also go through the gateway at {Gateway}");

    private string What() =>
        Contingency is not null ? Contingency
        : Apply.Count == 0
            ? $"simulated block of {CloudEndpoint} inside this PowerShell process (no firewall change)"
            : $"{Firewall} block of outbound TCP to {string.Join(", ", Addresses)} ({CloudEndpoint}):\n  " + string.Join("\n  ", Apply) + "\nremoved afterwards with:\n  " + string.Join("\n  ", Remove);
}
