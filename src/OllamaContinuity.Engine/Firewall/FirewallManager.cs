using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// Detects the backend, reads state, plans, and applies a plan with rollback: if a command exits non-zero, the
/// undo commands of what this run already changed run in reverse order, then a <see cref="FirewallCommandException"/>
/// carries the tool's stderr.
/// </summary>
public sealed partial class FirewallManager(FirewallEnvironment environment)
{
    public FirewallEnvironment Environment { get; } = environment;

    public FirewallBackend Create(FirewallBackendKind kind) => kind switch
    {
        FirewallBackendKind.Ufw => new UfwBackend(Environment),
        FirewallBackendKind.Firewalld => new FirewalldBackend(Environment),
        FirewallBackendKind.Nftables => new NftablesBackend(Environment),
        FirewallBackendKind.Iptables => new IptablesBackend(Environment),
        FirewallBackendKind.WindowsFirewall => new WindowsFirewallBackend(Environment),
        FirewallBackendKind.Pf => new PfBackend(Environment),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Auto is resolved by DetectAsync."),
    };

    /// <summary>
    /// Windows: Windows Defender Firewall; macOS: pf; Linux: the firewall that is in force, not one that is merely
    /// installed (see <see cref="DetectWithReasonAsync"/>). Every probe goes through the runner.
    /// </summary>
    public async Task<FirewallBackendKind> DetectAsync(CancellationToken cancellationToken = default) =>
        (await DetectWithReasonAsync(cancellationToken).ConfigureAwait(false)).Kind;

    /// <summary>
    /// Linux, first match wins: firewalld running (<c>firewall-cmd --state</c>); ufw active (<c>ufw status</c>);
    /// the module's own nftables table (<c>nft list tables</c>: <c>inet ollama_guard_*</c>) or own iptables chain
    /// (<c>iptables -S</c>: <c>OLLAMA-GUARD-*</c>); any nftables-native (inet) table; iptables rules beyond the
    /// default policies. Only when none of these is in force: the first installed of ufw, nft, iptables. So an
    /// inactive ufw next to an active nftables ruleset is never chosen. Read-only queries only.
    /// </summary>
    public async Task<FirewallDetection> DetectWithReasonAsync(CancellationToken cancellationToken = default)
    {
        switch (Environment.Platform)
        {
            case FirewallPlatform.Windows:
                return new(FirewallBackendKind.WindowsFirewall, "Windows: Windows Defender Firewall");
            case FirewallPlatform.MacOS:
                return new(FirewallBackendKind.Pf, "macOS: pf");
        }

        var runner = Environment.Runner;
        Task<CommandResult> Run(string fileName, params string[] arguments) => runner.RunAsync(CommandInvocation.Of(fileName, arguments), cancellationToken);

        var firewalld = await Run("firewall-cmd", "--state").ConfigureAwait(false);
        if (firewalld.Succeeded)
        {
            return new(FirewallBackendKind.Firewalld, "firewalld is running (firewall-cmd --state)");
        }

        var ufwInstalled = (await Run("ufw", [.. Environment.UfwOptions, "version"]).ConfigureAwait(false)).ExitCode != 127;
        if (ufwInstalled)
        {
            var status = await Run("ufw", [.. Environment.UfwOptions, "status"]).ConfigureAwait(false);
            if (status.Succeeded && status.StandardOutput.Contains("Status: active", StringComparison.Ordinal))
            {
                return new(FirewallBackendKind.Ufw, "ufw is active (ufw status)");
            }
        }

        var nftInstalled = (await Run("nft", "--version").ConfigureAwait(false)).ExitCode != 127;
        var tables = nftInstalled ? await Run("nft", "list", "tables").ConfigureAwait(false) : null;
        var tableLines = tables is { Succeeded: true } ? tables.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
        if (tableLines.FirstOrDefault(l => l.StartsWith("table inet ollama_guard_", StringComparison.Ordinal)) is { } own)
        {
            return new(FirewallBackendKind.Nftables, $"nftables holds this module's ruleset ({own})" + (ufwInstalled ? "; ufw is installed but inactive" : ""));
        }

        var iptInstalled = (await Run("iptables", "--version").ConfigureAwait(false)).ExitCode != 127;
        var ipt = iptInstalled ? await Run("iptables", "-w", "-S").ConfigureAwait(false) : null;
        var iptRules = ipt is { Succeeded: true } ? ipt.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
        if (iptRules.Any(l => l.StartsWith("-N OLLAMA-GUARD-", StringComparison.Ordinal)))
        {
            return new(FirewallBackendKind.Iptables, "iptables holds this module's chain" + (ufwInstalled ? "; ufw is installed but inactive" : ""));
        }

        if (tableLines.FirstOrDefault(l => l.StartsWith("table inet ", StringComparison.Ordinal)) is { } inet)
        {
            return new(FirewallBackendKind.Nftables, $"an nftables ruleset is in force ({inet})" + (ufwInstalled ? "; ufw is installed but inactive" : ""));
        }

        if (iptRules.Any(l => !l.StartsWith("-P ", StringComparison.Ordinal)))
        {
            return new(FirewallBackendKind.Iptables, "iptables rules are in force (iptables -S)" + (ufwInstalled ? "; ufw is installed but inactive" : ""));
        }

        if (ufwInstalled)
        {
            return new(FirewallBackendKind.Ufw, "no firewall is in force; ufw is installed (inactive)");
        }

        if (nftInstalled)
        {
            return new(FirewallBackendKind.Nftables, "no firewall is in force; nft is installed");
        }

        if (iptInstalled)
        {
            return new(FirewallBackendKind.Iptables, "no firewall is in force; iptables is installed");
        }

        throw new FirewallBackendNotFoundException(
            "No firewall to manage was found. Looked for, in this order: firewalld (firewall-cmd --state: " +
            (firewalld.ExitCode == 127 ? "not installed" : "not running") +
            "), ufw, nft (nftables) and iptables in PATH. Install one of them or name one with -Backend.");
    }

    public async Task<FirewallBackend> ResolveAsync(FirewallBackendKind kind, CancellationToken cancellationToken = default) =>
        Create(kind == FirewallBackendKind.Auto ? await DetectAsync(cancellationToken).ConfigureAwait(false) : kind);

    public async Task<FirewallPlan> PlanSetAsync(FirewallBackend backend, FirewallRequest request, CancellationToken cancellationToken = default)
    {
        AllowFrom.ValidatePort(request.Port);
        if (request.AllowFrom.Count == 0)
        {
            throw new FirewallInputException("EmptyAllowFrom", "-AllowFrom needs at least one address or CIDR.", null);
        }

        AllowFrom.CheckCount(backend.Kind, request.AllowFrom.Count);
        var current = await backend.ReadAsync(request.Port, cancellationToken).ConfigureAwait(false);
        return new FirewallPlan
        {
            Backend = backend.Kind,
            Port = request.Port,
            Current = current,
            Steps = backend.PlanSet(current, request with { AllowFrom = AllowFrom.Sort(request.AllowFrom) }),
            DesiredAllowFrom = AllowFrom.Sort(request.AllowFrom),
        };
    }

    public async Task<FirewallPlan> PlanRemoveAsync(FirewallBackend backend, int port, CancellationToken cancellationToken = default)
    {
        AllowFrom.ValidatePort(port);
        var current = await backend.ReadAsync(port, cancellationToken).ConfigureAwait(false);
        return new FirewallPlan { Backend = backend.Kind, Port = port, Current = current, Steps = backend.PlanRemove(current, port), IsRemoval = true };
    }

    /// <summary>Plans and applies in one go (no confirmation): converges to <paramref name="request"/>.</summary>
    public async Task<FirewallRuleInfo> SetAsync(FirewallBackend backend, FirewallRequest request, CancellationToken cancellationToken = default) =>
        await ApplyAsync(backend, await PlanSetAsync(backend, request, cancellationToken).ConfigureAwait(false), null, cancellationToken).ConfigureAwait(false);

    /// <summary>Removes what the module added for <paramref name="port"/> (nothing else).</summary>
    public async Task<FirewallRuleInfo> RemoveAsync(FirewallBackend backend, int port, CancellationToken cancellationToken = default) =>
        await ApplyAsync(backend, await PlanRemoveAsync(backend, port, cancellationToken).ConfigureAwait(false), null, cancellationToken).ConfigureAwait(false);

    public async Task<FirewallRuleInfo> GetAsync(FirewallBackend backend, int port, CancellationToken cancellationToken = default)
    {
        AllowFrom.ValidatePort(port);
        return ToInfo(backend, port, await backend.ReadAsync(port, cancellationToken).ConfigureAwait(false), false, []);
    }

    /// <summary>Runs the plan's commands in order; on a failure rolls back and throws. Returns the state read afterwards.</summary>
    public async Task<FirewallRuleInfo> ApplyAsync(FirewallBackend backend, FirewallPlan plan, IProgress<(int Done, int Total, string Command)>? progress = null, CancellationToken cancellationToken = default)
    {
        if (plan.IsEmpty)
        {
            return ToInfo(backend, plan.Port, plan.Current, false, []);
        }

        var ran = new List<string>();
        var done = new List<FirewallStep>();
        CommandResult? previous = null;
        foreach (var step in plan.Steps)
        {
            var command = step.Command;
            if (step.NeedsPreviousToken)
            {
                var token = previous is null ? null : TokenPattern().Match(previous.StandardOutput + "\n" + previous.StandardError) is { Success: true } m ? m.Groups[1].Value : null;
                if (token is null)
                {
                    continue;
                }

                command = command with { StandardInput = command.StandardInput?.Replace(FirewallStep.TokenPlaceholder, token, StringComparison.Ordinal) };
            }

            progress?.Report((done.Count, plan.Steps.Count, command.ToString()));
            var result = await Run(command, CancellationToken.None).ConfigureAwait(false);
            ran.Add(command.ToString());
            if (!result.Succeeded)
            {
                var (rolledBack, failures) = await RollbackAsync(done).ConfigureAwait(false);
                var stderr = (result.StandardError.Trim().Length > 0 ? result.StandardError : result.StandardOutput).Trim();
                throw new FirewallCommandException(
                    $"{backend.Kind}: '{command}' failed with exit code {result.ExitCode}: {stderr}" +
                    (rolledBack.Count == 0 ? " Nothing had been changed before it." : $" Rolled back the {rolledBack.Count} change(s) this run had made.") +
                    (failures.Count == 0 ? "" : " Rollback failed for: " + string.Join("; ", failures) + " (check these by hand)."),
                    command, result, ran, rolledBack, failures);
            }

            done.Add(step);
            previous = result;
            if (cancellationToken.IsCancellationRequested && done.Count < plan.Steps.Count)
            {
                await RollbackAsync(done).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
            }
        }

        var after = await backend.ReadAsync(plan.Port, cancellationToken).ConfigureAwait(false);
        return ToInfo(backend, plan.Port, after, true, ran);
    }

    public static FirewallRuleInfo ToInfo(FirewallBackend backend, int port, FirewallState state, bool changed, IReadOnlyList<string> commands) => new()
    {
        Backend = backend.Kind,
        Port = port,
        AllowFrom = state.AllowFrom.Select(n => n.ToShort()).ToArray(),
        Active = state.Active,
        Present = state.Present,
        SourceOfTruth = backend.SourceOfTruth(port),
        Changed = changed,
        Commands = commands.ToArray(),
        Warnings = state.Warnings.ToArray(),
    };

    private async Task<(List<string> RolledBack, List<string> Failures)> RollbackAsync(List<FirewallStep> done)
    {
        var rolledBack = new List<string>();
        var failures = new List<string>();
        for (var i = done.Count - 1; i >= 0; i--)
        {
            if (done[i].Undo is not { } first)
            {
                continue;
            }

            foreach (var undo in done[i].MoreUndo.Prepend(first))
            {
                var r = await Run(undo, CancellationToken.None).ConfigureAwait(false);
                rolledBack.Add(undo.ToString());
                if (!r.Succeeded)
                {
                    failures.Add($"{undo} (exit code {r.ExitCode}: {r.StandardError.Trim()})");
                }
            }
        }

        return (rolledBack, failures);
    }

    // A changing command is never cancelled half-way (Ctrl+C stops between commands), so no tool is killed mid-write.
    private Task<CommandResult> Run(CommandInvocation command, CancellationToken cancellationToken) => Environment.Runner.RunAsync(command, cancellationToken);

    [GeneratedRegex(@"Token\s*:\s*(\d+)")]
    private static partial Regex TokenPattern();
}
