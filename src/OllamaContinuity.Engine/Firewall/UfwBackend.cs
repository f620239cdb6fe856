using System.Net;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// ufw: the first matching rule wins, so each allowed source is <c>prepend</c>ed (never <c>insert 1</c>, which fails
/// for IPv6 when rule 1 is IPv4) and one <c>deny</c> for the port follows. The module's rules carry the comment
/// <see cref="Comment"/>; state is read from ufw's own files (<c>ufw show added</c>: the tuples of user.rules and
/// user6.rules) and <c>ufw status verbose</c>. An inactive ufw is only enabled with EnableFirewall.
/// </summary>
public sealed partial class UfwBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    public const string Comment = "OllamaContinuity";

    public override FirewallBackendKind Kind => FirewallBackendKind.Ufw;

    public override string SourceOfTruth(int port) =>
        $"ufw status; {Path.Combine(Environment.UfwRoot, "etc/ufw/user.rules")}, user6.rules (rules commented '{Comment}')";

    private sealed class UfwState : FirewallState
    {
        public bool Enabled { get; init; }
        public bool DenyPresent { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var status = await QueryAsync(cancellationToken, "ufw", [.. Environment.UfwOptions, "status", "verbose"]).ConfigureAwait(false);
        if (!status.Succeeded)
        {
            throw new FirewallBackendNotFoundException($"ufw status failed (exit code {status.ExitCode}): {status.StandardError.Trim()}");
        }

        var enabled = status.StandardOutput.Contains("Status: active", StringComparison.Ordinal);
        var added = await QueryAsync(cancellationToken, "ufw", [.. Environment.UfwOptions, "show", "added"]).ConfigureAwait(false);
        var allow = new List<string>();
        var deny = false;
        var warnings = new List<string>();
        var p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var line in Lines(added.StandardOutput))
        {
            var ours = line.Contains($"comment '{Comment}'", StringComparison.Ordinal);
            if (AllowLine().Match(line) is { Success: true } a && a.Groups["port"].Value == p && ours)
            {
                allow.Add(a.Groups["src"].Value);
            }
            else if (ours && (line.StartsWith($"ufw deny {p}/tcp ", StringComparison.Ordinal) || line.StartsWith($"ufw deny proto tcp to any port {p} ", StringComparison.Ordinal)))
            {
                deny = true;
            }
            else if (!ours && line.StartsWith("ufw allow", StringComparison.Ordinal) && Regex.IsMatch(line, $@"(\s|^){p}(/tcp)?(\s|$)|port {p}(\s|$)"))
            {
                warnings.Add($"Another ufw rule opens port {p} and may come before the module's deny: {line}");
            }
        }

        if (!enabled)
        {
            warnings.Add("ufw is inactive, so no ufw rule is in force. Run with -EnableFirewall to enable it (check that SSH is allowed first: enabling ufw with a default deny can cut your session).");
        }

        var present = allow.Count > 0 || deny;
        return new UfwState
        {
            Present = present,
            Active = enabled && allow.Count > 0 && deny,
            AllowFrom = ParseAll(allow),
            Enabled = enabled,
            DenyPresent = deny,
            Warnings = warnings,
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var state = (UfwState)current;
        var steps = new List<FirewallStep>();
        // New sources first (prepend puts them above the deny), then the ones no longer wanted, then the deny.
        foreach (var n in request.AllowFrom.Except(state.AllowFrom).Reverse())
        {
            steps.Add(Step(Allow("prepend", n, request.Port), Delete(n, request.Port)));
        }

        foreach (var n in state.AllowFrom.Except(request.AllowFrom))
        {
            steps.Add(Step(Delete(n, request.Port), Allow("prepend", n, request.Port)));
        }

        if (!state.DenyPresent)
        {
            steps.Add(Step(Ufw("deny", "proto", "tcp", "to", "any", "port", Port(request.Port), "comment", Comment), Ufw("delete", "deny", "proto", "tcp", "to", "any", "port", Port(request.Port))));
        }

        if (!state.Enabled && request.EnableFirewall)
        {
            steps.Add(Step(Ufw("--force", "enable"), Ufw("disable")));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var state = (UfwState)current;
        var steps = new List<FirewallStep>();
        if (state.DenyPresent)
        {
            steps.Add(Step(Ufw("delete", "deny", "proto", "tcp", "to", "any", "port", Port(port)), Ufw("deny", "proto", "tcp", "to", "any", "port", Port(port), "comment", Comment)));
        }

        foreach (var n in state.AllowFrom)
        {
            steps.Add(Step(Delete(n, port), Allow("prepend", n, port)));
        }

        return steps;
    }

    private CommandInvocation Allow(string verb, IPNetwork n, int port) =>
        Ufw(verb, "allow", "proto", "tcp", "from", n.ToShort(), "to", "any", "port", Port(port), "comment", Comment);

    private CommandInvocation Delete(IPNetwork n, int port) =>
        Ufw("delete", "allow", "proto", "tcp", "from", n.ToShort(), "to", "any", "port", Port(port));

    private CommandInvocation Ufw(params string[] args) => Cmd("ufw", [.. Environment.UfwOptions, .. args]);

    private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^ufw allow from (?<src>\S+) to any port (?<port>\d+) proto tcp\b")]
    private static partial Regex AllowLine();
}
