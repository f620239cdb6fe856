using System.Diagnostics;
using System.Text;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>The real gateway process, started by a test.</summary>
internal static class GatewayProcess
{
    /// <summary>The URL of the gateway's "LISTENING url" line, printed once it listens.</summary>
    public static Task<string> Listening(Process p)
    {
        var url = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var said = new StringBuilder();
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                url.TrySetException(new InvalidOperationException("The gateway exited before it listened: " + said));
            }
            else if (e.Data.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                url.TrySetResult(e.Data["LISTENING ".Length..]);
            }
            else
            {
                lock (said)
                {
                    said.AppendLine(e.Data);
                }
            }
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (said)
                {
                    said.AppendLine(e.Data);
                }
            }
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return url.Task;
    }
}
