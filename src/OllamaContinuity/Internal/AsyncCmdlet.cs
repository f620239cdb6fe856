using System.Collections.Concurrent;
using System.Management.Automation;

namespace OllamaContinuity.Internal;

/// <summary>
/// Base for cmdlets that call the async engine. The work runs on the thread pool with a token that
/// StopProcessing (Ctrl+C) cancels; everything that must touch PowerShell (Write*, host UI, prompts) is queued
/// back to the pipeline thread, which pumps the queue until the work is done.
/// </summary>
public abstract class AsyncCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private BlockingCollection<Action>? _queue;

    /// <summary>Cancelled by StopProcessing (Ctrl+C); pass it all the way down to the socket.</summary>
    protected CancellationToken CancellationToken => _cts.Token;

    protected override void StopProcessing() => _cts.Cancel();

    /// <summary>Runs <paramref name="work"/> to completion while executing queued actions on this (the pipeline) thread.</summary>
    protected T RunAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        using var queue = new BlockingCollection<Action>();
        _queue = queue;
        try
        {
            var task = Task.Run(() => work(_cts.Token));
            task.ContinueWith(static (_, q) => ((BlockingCollection<Action>)q!).CompleteAdding(), queue, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            foreach (var action in queue.GetConsumingEnumerable())
            {
                action();
            }

            try
            {
                return task.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) when (_cts.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
        }
        finally
        {
            _queue = null;
        }
    }

    /// <summary>Queues an action for the pipeline thread (fire and forget). Ignored once the work has finished.</summary>
    internal void Post(Action action)
    {
        var q = _queue;
        if (q is null)
        {
            return;
        }

        try
        {
            q.Add(action);
        }
        catch (InvalidOperationException)
        {
            // The work completed; nothing listens any more.
        }
    }

    /// <summary>Runs <paramref name="func"/> on the pipeline thread and returns its result to the worker.</summary>
    internal Task<TResult> InvokeOnPipelineThreadAsync<TResult>(Func<TResult> func)
    {
        var tcs = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                tcs.TrySetResult(func());
            }
            catch (Exception e)
            {
                tcs.TrySetException(e);
            }
        });
        if (_queue is null)
        {
            tcs.TrySetException(new InvalidOperationException("Not running."));
        }

        return tcs.Task;
    }

    public void Dispose()
    {
        _cts.Dispose();
        GC.SuppressFinalize(this);
    }
}
