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
    /// <summary>The host firewall blocks outbound TCP to the cloud endpoint's resolved addresses (needs root or an administrator).</summary>
    Firewall,
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

    public override string ToString() =>
        $"#{Sequence} {Phase} {Probe} {Backend ?? "none"} {LatencyMs:0}ms {(Passed ? "Passed" : "Failed")}";
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
    public override string ToString() =>
        Apply.Count == 0
            ? $"simulated block of {CloudEndpoint} inside this PowerShell process (no firewall change)"
            : $"{Firewall} block of outbound TCP to {string.Join(", ", Addresses)} ({CloudEndpoint}):\n  " + string.Join("\n  ", Apply) + "\nremoved afterwards with:\n  " + string.Join("\n  ", Remove);
}
