using System.Net;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// One firewall tool. A backend (a) reads the module's rules from the tool's own state, (b) computes the exact,
/// ordered commands that converge to a request (none when already converged), each with its undo. Applying and
/// rolling back is shared (<see cref="FirewallManager"/>); the backend never runs a changing command itself.
/// </summary>
public abstract class FirewallBackend(FirewallEnvironment environment)
{
    protected FirewallEnvironment Environment { get; } = environment;

    public abstract FirewallBackendKind Kind { get; }

    /// <summary>Where <see cref="ReadAsync"/> reads from, for the output's SourceOfTruth.</summary>
    public abstract string SourceOfTruth(int port);

    public abstract Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken);

    public abstract IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request);

    public abstract IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port);

    /// <summary>Runs a read-only query through the runner. A tool that cannot be started (exit code 127) means the backend is missing.</summary>
    protected async Task<CommandResult> QueryAsync(CancellationToken cancellationToken, string fileName, params string[] arguments)
    {
        var result = await Environment.Runner.RunAsync(CommandInvocation.Of(fileName, arguments), cancellationToken).ConfigureAwait(false);
        if (result.ExitCode == 127 && fileName != "cat")
        {
            throw new FirewallBackendNotFoundException($"{Kind}: '{fileName}' could not be started ({result.StandardError.Trim()}). Install it, or choose another backend with -Backend (or Auto).");
        }

        return result;
    }

    protected static FirewallStep Step(CommandInvocation command, CommandInvocation? undo = null) => new(command, undo);

    protected static CommandInvocation Cmd(string fileName, params string[] arguments) => CommandInvocation.Of(fileName, arguments);

    /// <summary>Writes a file through the runner (<c>tee FILE</c> with the content on standard input), so plans show it.</summary>
    protected static CommandInvocation WriteFile(string path, string content) => Cmd("tee", path) with { StandardInput = content };

    protected static CommandInvocation DeleteFile(string path) => Cmd("rm", "-f", path);

    /// <summary>A file write whose undo restores the previous content (or deletes the file if there was none).</summary>
    protected static FirewallStep WriteFileStep(string path, string content, string? previous) =>
        Step(WriteFile(path, content), previous is null ? DeleteFile(path) : WriteFile(path, previous) with { Purpose = "restore " + path });

    protected static string Sources(IEnumerable<IPNetwork> networks) => string.Join(", ", networks.Select(n => n.ToShort()));

    protected static IReadOnlyList<IPNetwork> ParseAll(IEnumerable<string> texts) =>
        AllowFrom.Sort(texts.Select(AllowFrom.FromTool).OfType<IPNetwork>());

    protected static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    protected static readonly Regex Spaces = new(@"\s+", RegexOptions.Compiled);
}
