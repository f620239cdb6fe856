namespace OllamaContinuity.Native;

/// <summary>
/// Records every command, like <see cref="RecordingCommandRunner"/>, and answers from a table that can be filled
/// without a delegate (from PowerShell too): the first answer whose prefix starts the command line wins; anything
/// else answers exit code 0 with no output. Used by -WhatIf/plan tests in PowerShell and Pester.
/// </summary>
public sealed class ScriptedCommandRunner : ICommandRunner
{
    private readonly object _lock = new();
    private readonly List<CommandInvocation> _commands = [];
    private readonly List<(string Prefix, CommandResult Result)> _answers = [];

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
    public ScriptedCommandRunner Answer(string prefix, int exitCode, string standardOutput = "", string standardError = "")
    {
        lock (_lock)
        {
            _answers.Add((prefix, new CommandResult(exitCode, standardOutput, standardError)));
        }

        return this;
    }

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

        return Task.FromResult(new CommandResult(0, "", ""));
    }

    public static string Line(CommandInvocation command) => string.Join(' ', new[] { command.FileName }.Concat(command.Arguments));
}
