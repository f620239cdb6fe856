using System.Net;
using System.Security;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// A test class that drives the gateway cmdlets: the stand-in cloud and Ollama, a module session, and its own
/// OLLAMACONTINUITY_STATE_DIR (so its classes run in the serial "Process environment" collection). Any gateway the
/// test started is stopped afterwards.
/// </summary>
public abstract class GatewaySessionTest : StandInBackendsTest
{
    private readonly string? _savedStateDir = Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR");

    protected GatewaySessionTest(string tag) => StateDir = TestPaths.New(tag);

    /// <summary>The state folder the session's cmdlets use.</summary>
    protected string StateDir { get; }

    protected ModuleSession Session { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", StateDir);
        Session = new ModuleSession();
    }

    public override async Task DisposeAsync()
    {
        Session.Invoke("Stop-AiGateway -Confirm:$false");
        Session.Dispose();
        Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", _savedStateDir);
        await base.DisposeAsync();
    }

    protected static SecureString Secure(string value) => new NetworkCredential("", value).SecurePassword;
}
