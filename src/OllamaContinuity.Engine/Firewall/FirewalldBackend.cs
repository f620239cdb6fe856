using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// firewalld. Two traps: a rich "accept from source" plus a "drop port" rule in a zone drops the trusted clients too
/// (deny rich rules are evaluated first), and a dedicated zone holding the sources binds those sources to it, so
/// they lose every other service of their zone (SSH!): firewalld 1.x does not let source-zone traffic drift on to
/// the interface zone (checked for real in the tests). The module therefore uses a dedicated <b>policy</b>
/// <c>ollama-PORT</c> from ANY ingress zone to HOST with a negative priority, so it runs before every zone: one
/// accept rich rule per allowed source for TCP to the port, and a drop rule for the port with priority 32767, so it
/// comes after the accepts. Packets it does not decide go on to the zones unchanged, so other services stay as they
/// were, and it does not matter whether a zone opens the port. Loopback is accepted by firewalld before any policy.
/// Changes are made with --permanent, then --reload.
/// </summary>
public sealed partial class FirewalldBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    /// <summary>Before all zones (policies with a negative priority run before zone rules).</summary>
    public const int PolicyPriority = -100;

    /// <summary>A change of more than this many rich rules is sent in batches instead of one call per rule. The default value is 16.</summary>
    public const int BatchThreshold = 16;

    /// <summary>The most rich rules in one firewall-cmd call (well under the argument-size limit). The default value is 500.</summary>
    public const int BatchSize = 500;

    private const string Description = "Managed by OllamaContinuity (Set-OllamaFirewallRule): TCP to the port from the accepted sources only; loopback is always accepted.";

    public override FirewallBackendKind Kind => FirewallBackendKind.Firewalld;

    public static string PolicyName(int port) => "ollama-" + port.ToString(CultureInfo.InvariantCulture);

    public override string SourceOfTruth(int port) => $"firewall-cmd --permanent --policy={PolicyName(port)} --list-rich-rules; --query-rich-rule (runtime)";

    private sealed class FirewalldState : FirewallState
    {
        public bool PolicyExists { get; init; }
        public bool DropPresent { get; init; }
        public bool ShapeOk { get; init; }
        public bool RuntimeMatches { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var policy = PolicyName(port);
        var state = await QueryAsync(cancellationToken, "firewall-cmd", "--state").ConfigureAwait(false);
        if (!state.Succeeded)
        {
            throw new FirewallBackendNotFoundException($"firewalld is not running (firewall-cmd --state: {(state.StandardError + state.StandardOutput).Trim()}). Start it, or choose another backend with -Backend.");
        }

        var policies = await QueryAsync(cancellationToken, "firewall-cmd", "--permanent", "--get-policies").ConfigureAwait(false);
        if (!policies.Succeeded)
        {
            throw new FirewallBackendNotFoundException(
                $"This firewalld has no policies (firewall-cmd --get-policies: {(policies.StandardError + policies.StandardOutput).Trim()}); the module needs firewalld 0.9 or later. Use -Backend Nftables or Iptables instead.");
        }

        if (!policies.StandardOutput.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Contains(policy))
        {
            return new FirewalldState();
        }

        var info = await QueryAsync(cancellationToken, "firewall-cmd", "--permanent", "--info-policy=" + policy).ConfigureAwait(false);
        var rules = await QueryAsync(cancellationToken, "firewall-cmd", "--permanent", "--policy=" + policy, "--list-rich-rules").ConfigureAwait(false);
        var p = port.ToString(CultureInfo.InvariantCulture);
        var sources = new List<string>();
        var drop = false;
        foreach (var line in Lines(rules.StandardOutput))
        {
            if (AcceptRule().Match(line) is { Success: true } m && m.Groups["port"].Value == p)
            {
                sources.Add(m.Groups["src"].Value);
            }
            else if (line == DropRule(port))
            {
                drop = true;
            }
        }

        var infoText = info.StandardOutput;
        var shapeOk = infoText.Contains("priority: " + PolicyPriority.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            && Regex.IsMatch(infoText, @"ingress-zones:\s*ANY\s*$", RegexOptions.Multiline)
            && Regex.IsMatch(infoText, @"egress-zones:\s*HOST\s*$", RegexOptions.Multiline);
        var allow = ParseAll(sources);
        // The runtime rules in one call (not one --query-rich-rule per source: 10,000 sources would be 10,000 calls).
        var runtimeList = await QueryAsync(cancellationToken, "firewall-cmd", "--policy=" + policy, "--list-rich-rules").ConfigureAwait(false);
        var runtimeRules = runtimeList.Succeeded ? Lines(runtimeList.StandardOutput).ToHashSet(StringComparer.Ordinal) : [];
        var runtime = drop && runtimeRules.Contains(DropRule(port)) && allow.All(n => runtimeRules.Contains(AcceptRule(n, port)));

        return new FirewalldState
        {
            Present = true,
            Active = shapeOk && drop && allow.Count > 0 && runtime,
            AllowFrom = allow,
            PolicyExists = true,
            DropPresent = drop,
            ShapeOk = shapeOk,
            RuntimeMatches = runtime,
            Warnings = runtime ? [] : [$"The permanent firewalld policy {policy} is not what is in force now: run firewall-cmd --reload (Set-OllamaFirewallRule does)."],
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (FirewalldState)current;
        var policy = PolicyName(request.Port);
        var steps = new List<FirewallStep>();
        if (!s.PolicyExists)
        {
            steps.Add(Step(Fw("--permanent", "--new-policy=" + policy), Fw("--permanent", "--delete-policy=" + policy)));
        }

        if (!s.ShapeOk)
        {
            // Setting these again on an existing policy is harmless (firewalld answers ALREADY_ENABLED, exit code 0).
            steps.AddRange(Skeleton(policy).Select(c => Step(c)));
        }

        var add = request.AllowFrom.Except(s.AllowFrom).Select(n => AcceptRule(n, request.Port)).ToArray();
        var remove = s.AllowFrom.Except(request.AllowFrom).Select(n => AcceptRule(n, request.Port)).ToArray();
        steps.AddRange(RichSteps(policy, add, adding: true, batch: add.Length + remove.Length > BatchThreshold));
        steps.AddRange(RichSteps(policy, remove, adding: false, batch: add.Length + remove.Length > BatchThreshold));

        if (!s.DropPresent)
        {
            steps.Add(Step(Rich(policy, "--add-rich-rule=", DropRule(request.Port)), Rich(policy, "--remove-rich-rule=", DropRule(request.Port))));
        }

        if (steps.Count > 0 || !s.RuntimeMatches)
        {
            steps.Add(Step(Fw("--reload"), Fw("--reload")));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (FirewalldState)current;
        if (!s.PolicyExists)
        {
            return [];
        }

        var policy = PolicyName(port);
        var steps = new List<FirewallStep>();
        if (s.DropPresent)
        {
            steps.Add(Step(Rich(policy, "--remove-rich-rule=", DropRule(port)), Rich(policy, "--add-rich-rule=", DropRule(port))));
        }

        var accepts = s.AllowFrom.Select(n => AcceptRule(n, port)).ToArray();
        steps.AddRange(RichSteps(policy, accepts, adding: false, batch: accepts.Length > BatchThreshold));

        // Rollback (the undos in reverse order) rebuilds the policy, then its rules.
        steps.Add(Step(Fw("--permanent", "--delete-policy=" + policy), Fw("--permanent", "--new-policy=" + policy)) with { MoreUndo = Skeleton(policy) });
        steps.Add(Step(Fw("--reload"), Fw("--reload")));
        return steps;
    }

    /// <summary>The accept rule for one source, exactly as firewall-cmd lists it.</summary>
    public static string AcceptRule(IPNetwork n, int port) =>
        $"rule family=\"{(n.IsV4() ? "ipv4" : "ipv6")}\" source address=\"{n.ToShort()}\" port port=\"{port.ToString(CultureInfo.InvariantCulture)}\" protocol=\"tcp\" accept";

    /// <summary>The drop rule for everyone else; priority 32767 puts it after the accepts.</summary>
    public static string DropRule(int port) => $"rule priority=\"32767\" port port=\"{port.ToString(CultureInfo.InvariantCulture)}\" protocol=\"tcp\" drop";

    private static CommandInvocation[] Skeleton(string policy) =>
    [
        Fw("--permanent", "--policy=" + policy, "--set-description=" + Description),
        Fw("--permanent", "--policy=" + policy, "--set-priority=" + PolicyPriority.ToString(CultureInfo.InvariantCulture)),
        Fw("--permanent", "--policy=" + policy, "--add-ingress-zone=ANY"),
        Fw("--permanent", "--policy=" + policy, "--add-egress-zone=HOST"),
    ];

    /// <summary>
    /// One step per rule, or (for large sets) one firewall-cmd call per <see cref="BatchSize"/> rules: firewall-cmd
    /// takes --add-rich-rule and --remove-rich-rule many times in one call.
    /// </summary>
    private static IEnumerable<FirewallStep> RichSteps(string policy, IReadOnlyList<string> rules, bool adding, bool batch)
    {
        var (doIt, undo) = adding ? ("--add-rich-rule=", "--remove-rich-rule=") : ("--remove-rich-rule=", "--add-rich-rule=");
        if (!batch)
        {
            return rules.Select(r => Step(Rich(policy, doIt, r), Rich(policy, undo, r)));
        }

        return rules.Chunk(BatchSize).Select(chunk => Step(
            Fw(["--permanent", "--policy=" + policy, .. chunk.Select(r => doIt + r)]),
            Fw(["--permanent", "--policy=" + policy, .. chunk.Select(r => undo + r)])));
    }

    private static CommandInvocation Rich(string policy, string option, string rule) => Fw("--permanent", "--policy=" + policy, option + rule);

    private static CommandInvocation Fw(params string[] args) => Cmd("firewall-cmd", args);

    [GeneratedRegex("^rule family=\"ipv[46]\" source address=\"(?<src>[^\"]+)\" port port=\"(?<port>\\d+)\" protocol=\"tcp\" accept$")]
    private static partial Regex AcceptRule();
}
