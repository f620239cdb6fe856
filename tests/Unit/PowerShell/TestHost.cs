using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// A small PSHost that records everything written to the host UI ("What if:" lines, streamed tokens) and answers
/// prompts from a script. With <see cref="Interactive"/> false it refuses to prompt, as a non-interactive pwsh does.
/// </summary>
public sealed class TestHost : PSHost
{
    private readonly Guid _id = Guid.NewGuid();

    public TestHost() => UI = new TestHostUI(this);

    public TestHostUI TestUI => (TestHostUI)UI;

    public bool Interactive { get; set; } = true;

    /// <summary>Answers to PromptForChoice, in order: the index of the chosen option. Empty: the default choice.</summary>
    public ConcurrentQueue<int> ChoiceAnswers { get; } = new();

    public ConcurrentQueue<string> Prompts { get; } = new();

    public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
    public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
    public override Guid InstanceId => _id;
    public override string Name => "OllamaContinuityTestHost";
    public override PSHostUserInterface UI { get; }
    public override Version Version => new(1, 0);

    public override void EnterNestedPrompt() => throw new NotSupportedException();
    public override void ExitNestedPrompt() => throw new NotSupportedException();
    public override void NotifyBeginApplication() { }
    public override void NotifyEndApplication() { }
    public override void SetShouldExit(int exitCode) { }
}

public sealed class TestHostUI : PSHostUserInterface
{
    private readonly TestHost _host;
    private readonly StringBuilder _text = new();
    private readonly object _lock = new();

    public TestHostUI(TestHost host) => _host = host;

    /// <summary>Everything written through Write/WriteLine (What if lines, streamed tokens).</summary>
    public string Text
    {
        get
        {
            lock (_lock)
            {
                return _text.ToString();
            }
        }
    }

    public ConcurrentQueue<ProgressRecord> Progress { get; } = new();

    public override PSHostRawUserInterface? RawUI => null;

    public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions) =>
        throw new PSInvalidOperationException("The test host does not prompt for fields.");

    public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice)
    {
        if (!_host.Interactive)
        {
            throw new PSInvalidOperationException("PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.");
        }

        _host.Prompts.Enqueue(caption + "|" + message);
        return _host.ChoiceAnswers.TryDequeue(out var answer) ? answer : defaultChoice;
    }

    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) => throw new NotSupportedException();
    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();
    public override string ReadLine() => throw new PSInvalidOperationException("no input in tests");
    public override SecureString ReadLineAsSecureString() => throw new PSInvalidOperationException("no input in tests");

    public override void Write(string value) => Append(value);
    public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Append(value);
    public override void WriteLine(string value) => Append(value + "\n");
    public override void WriteDebugLine(string message) => Append("DEBUG: " + message + "\n");
    public override void WriteErrorLine(string value) => Append("ERROR: " + value + "\n");
    public override void WriteVerboseLine(string message) => Append("VERBOSE: " + message + "\n");
    public override void WriteWarningLine(string message) => Append("WARNING: " + message + "\n");
    public override void WriteProgress(long sourceId, ProgressRecord record) => Progress.Enqueue(record);

    private void Append(string s)
    {
        lock (_lock)
        {
            _text.Append(s);
        }
    }
}
