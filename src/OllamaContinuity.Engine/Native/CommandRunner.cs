using System.Diagnostics;
using System.Text;

namespace OllamaContinuity.Native;

/// <summary>One native command: a program and its arguments as a list. Never a shell string.</summary>
public sealed record CommandInvocation(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>Text written to the program's standard input (for example a ruleset for <c>nft -f -</c>).</summary>
    public string? StandardInput { get; init; }

    /// <summary>Set when this command undoes an earlier one (rollback plans print it).</summary>
    public string? Purpose { get; init; }

    public static CommandInvocation Of(string fileName, params string[] arguments) => new(fileName, arguments);

    /// <summary>A display form, quoted like a POSIX shell would need it. For humans only: never executed as a string.</summary>
    public override string ToString() =>
        string.Join(' ', new[] { FileName }.Concat(Arguments).Select(Quote)) + (StandardInput is null ? "" : " <<'EOF'\n" + StandardInput.TrimEnd('\n') + "\nEOF");

    private static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || "-_./:=,@%+".Contains(c)) ? a : "'" + a.Replace("'", "'\\''") + "'";
}

public sealed record CommandResult(int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>
/// The seam between the engine and the system: every native tool the module runs goes through here. Production
/// uses <see cref="ProcessCommandRunner"/>; tests use the same runner for real inside network namespaces, or a
/// recording runner to check the exact plan for Windows and macOS.
/// </summary>
public interface ICommandRunner
{
    Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default);
}

/// <summary>Starts programs with an argument list (no shell), optional extra environment and a prefix (for example <c>ip netns exec NS</c>).</summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    public static ProcessCommandRunner Default { get; } = new();

    /// <summary>Prepended to every command: <c>["ip","netns","exec","ns1"]</c> runs it inside a namespace.</summary>
    public IReadOnlyList<string> Prefix { get; init; } = [];

    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>The longest a command may run. The default value is 2 minutes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(2);

    public async Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default)
    {
        var file = Prefix.Count > 0 ? Prefix[0] : command.FileName;
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = command.StandardInput is not null,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var p in Prefix.Skip(1))
        {
            psi.ArgumentList.Add(p);
        }

        if (Prefix.Count > 0)
        {
            psi.ArgumentList.Add(command.FileName);
        }

        foreach (var a in command.Arguments)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in Environment)
        {
            psi.Environment[k] = v;
        }

        psi.Environment["LC_ALL"] = "C";
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new CommandResult(127, "", $"{command.FileName}: {e.Message}");
        }

        using var timeout = new CancellationTokenSource(Timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var stdout = process.StandardOutput.ReadToEndAsync(linked.Token);
        var stderr = process.StandardError.ReadToEndAsync(linked.Token);
        if (command.StandardInput is not null)
        {
            await process.StandardInput.WriteAsync(command.StandardInput.AsMemory(), linked.Token).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        try
        {
            await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
            return new CommandResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            return new CommandResult(124, "", $"{command.FileName} did not finish within {Timeout.TotalSeconds:0} s");
        }
    }
}

/// <summary>
/// Records every command and answers from a script: the runner for -WhatIf plans and plan tests. Answers come from
/// a table that can be filled without a delegate (so PowerShell and Pester can fill it too): the first entry whose
/// prefix starts the command line wins; otherwise <see cref="Respond"/> answers (exit code 0, no output, by default).
/// </summary>
public sealed class RecordingCommandRunner : ICommandRunner
{
    private readonly object _lock = new();
    private readonly List<CommandInvocation> _commands = [];
    private readonly List<(string Prefix, CommandResult Result)> _answers = [];

    /// <summary>Answers a command no table entry matched; the default answers exit code 0 with no output.</summary>
    public Func<CommandInvocation, CommandResult> Respond { get; set; } = _ => new CommandResult(0, "", "");

    public IReadOnlyList<CommandInvocation> Commands
    {
        get
        {
            lock (_lock)
            {
                return _commands.ToArray();
            }
        }
    }

    /// <summary>The recorded commands as lines ("program arg arg"), for assertions.</summary>
    public string[] CommandLines => Commands.Select(Line).ToArray();

    /// <summary>Answers commands whose line ("program arg arg") starts with <paramref name="prefix"/>.</summary>
    public RecordingCommandRunner Answer(string prefix, int exitCode, string standardOutput = "", string standardError = "")
    {
        lock (_lock)
        {
            _answers.Add((prefix, new CommandResult(exitCode, standardOutput, standardError)));
        }

        return this;
    }

    /// <summary>Forgets the recorded commands (the answers stay).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _commands.Clear();
        }
    }

    public Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default)
    {
        var line = Line(command);
        lock (_lock)
        {
            _commands.Add(command);
            foreach (var (prefix, result) in _answers)
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return Task.FromResult(result);
                }
            }
        }

        return Task.FromResult(Respond(command));
    }

    public static string Line(CommandInvocation command) => string.Join(' ', new[] { command.FileName }.Concat(command.Arguments));
}
